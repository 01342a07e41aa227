"""A product's own actions on the same database."""
import time

import sqlalchemy as sa

from apiphant import action
from apiphant.errors import Conflict, Invalid, Missing
from apiphant.crud import ACTIONS, OPTIONAL_ACTIONS, database
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
        connection.execute(sa.update(_items.sql).where(_items.sql.c.id == first.id)
                           .values(count=sa.select(sa.func.count()).select_from(_items.sql)
                                   .where(_items.sql.c.batch == request.batch).scalar_subquery()))
        if request.get('fail'):
            raise Conflict('rolled back')
    return {'ids': [first.id, second.id]}


@action
def slow(request):
    """A slow read: PostgreSQL sleeps, SQLite counts; ``unbounded``: without
    the deadline of database_timeout."""
    with database().connect(**({'timeout': None} if request.get('unbounded') else {})) as connection:
        started = time.time()
        if connection.dialect.name == 'postgresql':
            connection.execute(sa.text('SELECT pg_sleep(:seconds)'), {'seconds': request.seconds})
        else:
            connection.execute(sa.text('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n '
                                       'WHERE i < :count) SELECT count(*) FROM n'), {'count': request.count})
        return {'started': started, 'ended': time.time()}


@action
def increment(request):
    """Read an item, then store its count plus one: the README's pattern,
    exact under concurrency. ``via``: read (default) or list."""
    with database().transaction():
        if request.get('via') == 'list':
            row = _items.list({'where': {'id': request.id}})['data'][0]
        else:
            row = _items.read({'id': request.id})
        return _items.update({'id': row.id, 'count': row.count + 1})


@action
def clock(request):
    """The server's clock, for checks that requests ran while something else waited."""
    return {'time': time.time()}


@action
def attempt(request):
    """Call a method of the items table; a field error it raises is caught
    here, as a product's own code catches it, and answered as data."""
    if request.method not in ACTIONS + OPTIONAL_ACTIONS:
        raise Invalid('method', f'one of {", ".join(ACTIONS + OPTIONAL_ACTIONS)}')
    try:
        return {'answer': getattr(_items, request.method)(request.request)}
    except Invalid as error:
        return {'caught': 'Invalid', 'error': error.to_dict()['error']}
    except Missing as error:
        return {'caught': 'Missing', 'error': error.to_dict()['error']}
