"""Admins only, for every generated action, those opted in too."""
from apiphant.auth import role
from apiphant.crud import ACTIONS, Column, Table

reports = Table('reports', body=Column(str, default=''), access=role('admin'), actions=ACTIONS + ('group',))
