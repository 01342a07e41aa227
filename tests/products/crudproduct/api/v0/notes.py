"""Hooks, and a create defined here that extends the generated one."""
from apiphant.errors import Forbidden
from apiphant.crud import Column, Table
from crudproduct.api.v0.events import events as _events  # _: not routed here

notes = Table('notes',
    text=Column(str, required=True),
    words=Column(int, writable=False),
    owner=Column(str, hidden=True, writable=False),
)


@notes.before_create
def count_words(values):
    if values.text == 'forbidden':
        raise Forbidden('not that text')
    values.words = len(values.text.split())
    values.owner = 'server'


@notes.after_create
def record_create(row):
    _events.create({'kind': 'create', 'note_id': row.id})
    if row.text == 'fail after':
        raise Forbidden('rolled back')
    row.seen_by_hook = row.owner


@notes.before_update
def keep_locked(changes, row):
    if row.text == 'locked':
        raise Forbidden('locked')
    if 'text' in changes:
        changes.words = len(changes.text.split())


@notes.after_update
def record_update(row):
    _events.create({'kind': 'update', 'note_id': row.id})


@notes.before_delete
def keep_pinned(row):
    if row.text == 'pinned':
        raise Forbidden('pinned')


@notes.after_delete
def record_delete(row):
    _events.create({'kind': 'delete', 'note_id': row.id})


def create(request):
    """Defined here: replaces the generated create, and extends it."""
    row = notes.create(request)
    row.extended = True
    return row
