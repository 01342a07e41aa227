"""The actions a table opts in to, which look at many rows at once: ``group``
(how many rows have each value of a field), ``stats`` (minimum, maximum and
average of fields) and ``sample`` (random rows). Each takes the ``where`` of
``list``."""
import math

import sqlalchemy as sa

from apiphant.errors import Invalid, Missing
from apiphant.request import Request
from apiphant.crud import fields, query, storage

_SCALE = 2.0 ** 1000  # a power of two: exact; the largest float divided is below 2 ** 24

__all__ = ['group', 'stats', 'sample']


def group(table, request):
    """``{"data": [{"value", "count"}]}``: the most frequent values first,
    then by value; at most ``page_size`` of them (``max_page_size`` unless given)."""
    fields.only(request, ('field', 'where', 'page_size'))
    name = request.get('field')
    if name is None:
        raise Missing('field')
    if not isinstance(name, str) or name not in table.group_fields:
        raise Invalid('field', f'one of {", ".join(table.group_fields)}')
    where = table.where(request)
    _, limit = query.paging(request, table.max_page_size, table.max_page_size)
    column, count = table.sql.c[name], sa.func.count().label('count')
    statement = (sa.select(column, count).group_by(column)
                 .order_by(count.desc(), column.asc().nulls_first()).limit(limit))
    if where is not None:
        statement = statement.where(where)
    budget = table.group_budgets.get(name)
    with table.prepare().connect() as connection, fields.refused('where'):
        if budget is not None and budget.unbounded:  # the same groups, in the same order: their lengths
            budget.check(connection.execute(statement.with_only_columns(budget.size, maintain_column_froms=True))
                         .scalars())
        rows = connection.execute(statement).all()
    if budget is not None:
        budget.check_rows(rows, (0,))
    return {'data': [{'value': value, 'count': number} for value, number in rows]}


def stats(table, request):
    """``{field: {"min", "max", "avg"}}``, each null when no row matches.
    The average of floats never overflows: PostgreSQL sums them as numeric,
    and SQLite, whose sum reached infinity, sums them again scaled down."""
    fields.only(request, ('fields', 'where'))
    names = request.get('fields')
    if names is None:
        raise Missing('fields')
    if (not isinstance(names, list) or not names
            or not all(isinstance(name, str) and name in table.stats_fields for name in names)
            or len(set(names)) != len(names)):
        raise Invalid('fields', f'a list of distinct fields among {", ".join(table.stats_fields)}')
    where = table.where(request)
    database = table.prepare()
    selected = []
    for name in names:
        column = table.sql.c[name]
        averaged = column
        if database.dialect == 'postgresql' and table.columns[name].kind.name == 'float':
            averaged = sa.cast(column, sa.Numeric())
        # PostgreSQL's avg of integers and numerics is a numeric: a float, as in SQLite.
        selected += [sa.func.min(column), sa.func.max(column), sa.type_coerce(sa.func.avg(averaged), sa.Float())]
    statement = sa.select(*selected).select_from(table.sql)
    if where is not None:
        statement = statement.where(where)
    with database.connect() as connection, fields.refused('where'):
        values = list(connection.execute(statement).one())
        overflowed = [i for i in range(len(names)) if values[3 * i + 2] is not None
                      and not math.isfinite(values[3 * i + 2])]
        if overflowed:
            scaled = sa.select(*(sa.func.avg(table.sql.c[names[i]] / _SCALE) for i in overflowed))
            again = connection.execute(scaled if where is None else scaled.where(where)).one()
            for i, average in zip(overflowed, again):
                low, high = values[3 * i], values[3 * i + 1]
                values[3 * i + 2] = min(max(average * _SCALE, low), high)
    return {name: {'min': values[3 * i], 'max': values[3 * i + 1], 'avg': values[3 * i + 2]}
            for i, name in enumerate(names)}


def sample(table, request):
    """``{"data": [rows]}``: ``page_size`` random rows (``random()`` in both databases)."""
    fields.only(request, ('where', 'page_size'))
    where = table.where(request)
    _, page_size = query.paging(request, table.page_size, table.max_page_size)
    budget, key = table.budget, table.sql.c.id
    if budget.unbounded:  # picked first, with their lengths; then read
        statement = sa.select(key, budget.size).order_by(sa.func.random()).limit(page_size)
    else:
        statement = sa.select(*table.visible).order_by(sa.func.random()).limit(page_size)
    if where is not None:
        statement = statement.where(where)
    with table.prepare().connect() as connection, fields.refused('where'):
        locks = storage.locks_rows(connection)
        if budget.unbounded:
            picked = connection.execute(statement).all()
            budget.check(size for _, size in picked)
            statement = sa.select(*table.visible).where(key.in_([found for found, _ in picked]))
        if locks:
            statement = statement.with_for_update()
        rows = connection.execute(statement).all()
    if budget.unbounded:
        order = {found: place for place, (found, _) in enumerate(picked)}
        rows.sort(key=lambda row: order[row.id])
    budget.check_rows(rows, table.text_places)
    return {'data': [Request(row._mapping) for row in rows]}
