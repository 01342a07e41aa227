"""Notes scoped to their owner, a hidden column; ``mine`` lists them from the
product's own code."""
from apiphant import action, context
from apiphant.crud import ACTIONS, OPTIONAL_ACTIONS, Column, Table

notes = Table('notes', owner=Column(str, hidden=True), text=Column(str, required=True),
              size=Column(int, default=0), actions=ACTIONS + OPTIONAL_ACTIONS)


def _owner():
    return context.headers.get('x-owner')


@notes.before_create
def owned(values):
    values['owner'] = _owner()


@notes.scope
def mine_only(request):
    return None if _owner() == 'admin' else {'owner': _owner()}


@action
def mine(request):
    """The table's own methods, called by the product: scoped too."""
    listed = notes.list({'page_size': 100, 'total': True})
    return {'total': listed['meta']['total_objects'], 'texts': sorted(row.text for row in listed['data']),
            'read': notes.read({'id': request.id}) if 'id' in request else None}
