"""Tasks: in a project (restrict, by name), subtasks of a task (cascade, to
itself), an assignee (set null, by the table object)."""
from apiphant.crud import Column, Table

from ._declaration import LOOSE
from .people import people as _people

if LOOSE:
    references = dict(project=Column(int), parent=Column(int), assignee=Column(int))
else:
    references = dict(project=Column(int, references='projects'),
                      parent=Column(int, references='tasks', on_delete='cascade'),
                      assignee=Column(int, references=_people, on_delete='set null'))

tasks = Table('tasks', title=Column(str, required=True, max_length=100), **references)
