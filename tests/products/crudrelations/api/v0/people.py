"""People: a hidden column, never expanded either."""
from apiphant.crud import Column, Table

people = Table('people', name=Column(str, required=True, max_length=100), secret=Column(str, hidden=True))
