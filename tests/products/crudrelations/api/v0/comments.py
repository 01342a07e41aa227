"""Comments on a task (cascade): a task's deletion takes them along."""
from apiphant.crud import Column, Table

from ._declaration import LOOSE

comments = Table('comments', text=Column(str, required=True, max_length=100),
                 task=Column(int, required=True) if LOOSE else Column(int, required=True, references='tasks',
                                                                      on_delete='cascade'))
