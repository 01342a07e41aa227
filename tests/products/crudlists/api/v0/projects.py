"""Projects, which tasks refer to."""
from apiphant.crud import Column, Table

projects = Table('projects', name=Column(str, required=True, max_length=100))
