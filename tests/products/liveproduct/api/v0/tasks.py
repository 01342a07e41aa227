"""Tasks anyone may watch, change and list; actions that write and then roll back."""
from apiphant import action
from apiphant.auth import ANYONE
from apiphant.crud import ACTIONS, Column, Table
from apiphant.errors import Invalid

ACCESS = ANYONE

tasks = Table(
    'tasks',
    title=Column(str, required=True),
    done=Column(bool, default=False),
    points=Column(int, default=0),
    due=Column('datetime'),
    secret=Column(str, default='', hidden=True),
    actions=ACTIONS + ('watch',),
)


@action
def failed_batch(request):
    """Two creates in one transaction, then a 400: both rolled back."""
    with tasks.database.transaction():
        tasks.create({'title': 'rolled back 1'})
        tasks.create({'title': 'rolled back 2'})
        raise Invalid('title', 'this batch always fails')


@action
def partial_batch(request):
    """A create, then a savepoint that fails: the first is kept, the second not."""
    with tasks.database.transaction():
        kept = tasks.create({'title': request.get('title', 'kept')})
        try:
            with tasks.database.transaction():
                tasks.create({'title': 'undone by its savepoint'})
                raise Invalid('title', 'the savepoint fails')
        except Invalid:
            pass
    return kept
