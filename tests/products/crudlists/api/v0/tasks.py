"""Tasks of a project, scoped to their owner (``X-Owner``; ``admin`` sees
all), listed by ``(project, due)`` through the index on that pair; ``bump``
changes many rows with a statement of its own that keeps ``version`` honest."""
import sqlalchemy as sa

from apiphant import action, context
from apiphant.crud import Column, Table, database
from apiphant.validation import field

tasks = Table('tasks',
              project=Column(int, required=True, references='projects'),
              due=Column('date'),
              points=Column(float),
              title=Column(str, max_length=100),
              done=Column(bool, default=False),
              owner=Column(str, hidden=True),
              label=Column(str, writable=False, max_length=20),
              indexes=[('project', 'due')])


def _owner():
    return context.headers.get('x-owner')


@tasks.before_create
def owned(values):
    values['owner'] = _owner()
    values['label'] = 'new'  # writable=False: a hook sets it


@tasks.scope
def own_rows(request):
    return None if _owner() in (None, 'admin') else {'owner': _owner()}


@action
def bump(request):
    """Add points to every task of a project in one statement of the product's own."""
    project = field(request, 'project', is_required=True, valid_type=int)
    with database().transaction() as connection:
        changed = connection.execute(tasks.update_statement().where(tasks.sql.c.project == project)
                                     .values(points=sa.func.coalesce(tasks.sql.c.points, 0) + 1))
    return {'changed': changed.rowcount}


@action
def mine(request):
    """Pages walked by the product's own code: the table's methods answer Requests."""
    listed = tasks.list({'page_size': 2, 'sort_by': '-due'})
    seen = [row.id for row in listed.data]
    while listed.meta.next is not None:
        listed = tasks.list({'page_size': 2, 'sort_by': '-due', 'after': listed.meta.next})
        seen += [row.id for row in listed.data]
    return {'ids': seen}
