"""``accounts`` as CRUD_DECLARATION says: ``loose`` is a table made before
constraints existed (every column nullable, no index), ``strict`` the same
columns with their rules."""
import os

import sqlalchemy as sa

from apiphant import action
from apiphant.crud import Column, Table, database
from apiphant.crud.integrity import violations

DECLARATIONS = {
    'loose': dict(email=Column(str), team=Column(str), handle=Column(str), role=Column(str)),
    'strict': dict(email=Column(str, unique=True, required=True), team=Column(str, index=True),
                   handle=Column(str), role=Column(str, choices=['admin', 'member'], default='member'),
                   unique=[('team', 'handle')], indexes=[('team', 'role')]),
}

accounts = Table('accounts', **DECLARATIONS[os.environ.get('CRUD_DECLARATION', 'strict')])


@action
def raw(request):
    """Insert ``request.values`` with no check of apiphant's: what the
    database itself refuses, answered as a table's action would be."""
    with violations(accounts), database().transaction() as connection:
        connection.execute(sa.insert(accounts.sql).values(version=1, **request['values']))
    return {}
