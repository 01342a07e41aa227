"""The actions a table opts in to, which look at many rows at once: ``group``
(how many rows have each value of a field), ``stats`` (minimum, maximum and
average of fields) and ``sample`` (random rows). Each takes the ``where`` of
``list``."""
import sqlalchemy as sa

from apiphant.errors import Invalid, Missing
from apiphant.request import Request
from apiphant.crud import fields, query

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
    with table.prepare().connect() as connection:
        return {'data': [{'value': value, 'count': number} for value, number in connection.execute(statement)]}


def stats(table, request):
    """``{field: {"min", "max", "avg"}}``, each null when no row matches."""
    fields.only(request, ('fields', 'where'))
    names = request.get('fields')
    if names is None:
        raise Missing('fields')
    if (not isinstance(names, list) or not names
            or not all(isinstance(name, str) and name in table.stats_fields for name in names)
            or len(set(names)) != len(names)):
        raise Invalid('fields', f'a list of distinct fields among {", ".join(table.stats_fields)}')
    where = table.where(request)
    selected = []
    for name in names:
        column = table.sql.c[name]
        # PostgreSQL's avg of integers is a numeric: a float, as in SQLite.
        selected += [sa.func.min(column), sa.func.max(column), sa.type_coerce(sa.func.avg(column), sa.Float())]
    statement = sa.select(*selected).select_from(table.sql)
    if where is not None:
        statement = statement.where(where)
    with table.prepare().connect() as connection:
        values = connection.execute(statement).one()
    return {name: {'min': values[3 * i], 'max': values[3 * i + 1], 'avg': values[3 * i + 2]}
            for i, name in enumerate(names)}


def sample(table, request):
    """``{"data": [rows]}``: ``page_size`` random rows (``random()`` in both databases)."""
    fields.only(request, ('where', 'page_size'))
    where = table.where(request)
    _, page_size = query.paging(request, table.page_size, table.max_page_size)
    statement = sa.select(*table.visible).order_by(sa.func.random()).limit(page_size)
    if where is not None:
        statement = statement.where(where)
    with table.prepare().connect() as connection:
        return {'data': [Request(row._mapping) for row in connection.execute(statement)]}
