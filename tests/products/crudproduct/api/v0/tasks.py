"""The README's examples, as written there."""
from apiphant import action
from apiphant.crud import Table, Column, database
from apiphant.validation import field

tasks = Table('tasks',
    title=Column(str, required=True, max_length=200),
    is_completed=Column(bool, default=False),
    spent_time=Column(int, default=0),
    created_at=Column('datetime', default='now', writable=False),
)


@action
def complete(request):
    """Complete several tasks: all of them, or none when one is missing."""
    ids = field(request, 'ids', is_required=True, valid_type=list, max_length=100)
    with database().transaction():
        rows = [tasks.update({'id': key, 'is_completed': True}) for key in ids]
    return {'data': rows}


@action
def purge(request):
    """Delete the completed tasks."""
    with database().transaction() as connection:
        deleted = connection.execute(tasks.sql.delete().where(tasks.sql.c.is_completed))
    return {'deleted': deleted.rowcount}
