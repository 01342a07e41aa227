"""Each run of ``note`` adds a row to the table ``bg_notes``, in the database
the scheduler was given."""
from apiphant.background import current_run, seconds
from apiphant.crud import Column, Table

notes = Table('bg_notes', slot=Column(int), text=Column(str, required=True))


@seconds(3600)
def note():
    notes.create({'slot': current_run().slot, 'text': 'written by the scheduler'})
