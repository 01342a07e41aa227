"""A team's tasks: each caller's own, and the shared ones; only their owner
changes them; members and admins delete; admins see every row."""
from apiphant import action
from apiphant.auth import ANYONE, role
from apiphant.crud import ACTIONS, OPTIONAL_ACTIONS, Column, Table

tasks = Table(
    'tasks',
    title=Column(str, required=True),
    owner_id=Column(int, writable=False, index=True),
    shared=Column(bool, default=False),
    points=Column(int, default=0),
    actions=ACTIONS + OPTIONAL_ACTIONS,
    owner='owner_id',
    rules={'list': {'$or': [{'owner_id': '$auth.id'}, {'shared': True}]},
           'update': {'owner_id': '$auth.id'},
           'delete': {'owner_id': '$auth.id'},
           'create': {'points': {'$le': 100}}},
    access={'delete': role('member', 'admin')},
)


@action
def mine(request):
    """The table's methods called from the product's own code: the caller's rules hold."""
    listed = tasks.list({'page_size': 100, 'total': True})
    return {'total': listed['meta']['total_objects'], 'titles': sorted(row.title for row in listed['data'])}


@action(access=ANYONE)
def count(request):
    """Open to anyone, and an anonymous caller reaches no row (rules fail closed)."""
    return {'total': tasks.list({'total': True})['meta']['total_objects']}
