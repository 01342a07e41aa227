"""A product's own actions on the same database."""
import time

import sqlalchemy as sa

from apiphant import action
from apiphant.errors import Conflict
from apiphant.crud import database
from crudproduct.api.v0.items import items as _items


_holding = []


@action
def hold(request):
    """Hold a write transaction for a while, yielding to other greenlets."""
    with database().transaction():
        started = time.time()
        _holding.append(started)
        try:
            time.sleep(request.get('seconds', 1))
        finally:
            _holding.remove(started)
        return {'started': started, 'ended': time.time()}


@action
def holding(request):
    """How many holds are in their transaction now."""
    return {'holding': len(_holding)}


@action
def pair(request):
    """Two creates and a raw statement in one transaction; all or nothing."""
    with database().transaction() as connection:
        first = _items.create({'batch': request.batch, 'name': 'first'})
        second = _items.create({'batch': request.batch, 'name': 'second'})
        connection.execute(sa.update(_items.table).where(_items.table.c.id == first.id)
                           .values(count=sa.select(sa.func.count()).select_from(_items.table)
                                   .where(_items.table.c.batch == request.batch).scalar_subquery()))
        if request.get('fail'):
            raise Conflict('rolled back')
    return {'ids': [first.id, second.id]}


@action
def slow(request):
    """A slow read: PostgreSQL sleeps, SQLite counts."""
    with database().connect() as connection:
        started = time.time()
        if connection.dialect.name == 'postgresql':
            connection.execute(sa.text('SELECT pg_sleep(:seconds)'), {'seconds': request.seconds})
        else:
            connection.execute(sa.text('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n '
                                       'WHERE i < :count) SELECT count(*) FROM n'), {'count': request.count})
        return {'started': started, 'ended': time.time()}


@action
def clock(request):
    """The server's clock, for checks that requests ran while something else waited."""
    return {'time': time.time()}
