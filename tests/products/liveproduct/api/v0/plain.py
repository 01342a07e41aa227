"""A table that cannot be watched."""
from apiphant.auth import ANYONE
from apiphant.crud import Column, Table

ACCESS = ANYONE

plain = Table('plain', name=Column(str, default=''))
