"""Projects, scoped to their owner (the X-Owner header; none or admin: all);
a lead among people, named by the table's name."""
from apiphant import context
from apiphant.crud import Column, Table

from ._declaration import DECLARATION, LOOSE

projects = Table(
    'projects', name=Column(str, required=DECLARATION == 'strict', max_length=100), owner=Column(str, hidden=True),
    lead=Column(int) if LOOSE else Column(int, references='people'))


def _owner():
    return context.headers.get('x-owner')


@projects.before_create
def owned(values):
    values['owner'] = _owner()


@projects.scope
def mine_only(request):
    return None if _owner() in (None, 'admin') else {'owner': _owner()}
