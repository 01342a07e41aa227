"""What the hooks of notes record, in the notes' transaction; list only."""
from apiphant.crud import Column, Table

events = Table('events',
    kind=Column(str, required=True),
    note_id=Column(int, required=True),
    actions=('list',),
)
