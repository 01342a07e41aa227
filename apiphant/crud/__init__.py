"""Generated CRUD: a target module that declares a ``Table`` gets its actions.

::

    from apiphant.crud import Table, Column

    tasks = Table('tasks',
        title=Column(str, required=True, max_length=200),
        is_completed=Column(bool, default=False),
    )

``POST /api/v0/tasks/create|read|update|delete|list`` then work, over SQLite
beside the product or the PostgreSQL of ``--database-url``. Modules:
``columns`` (kinds and checks), ``fields`` (a request's names, ``id`` and
``version``), ``query`` (the where language, sorting, paging), ``table`` (the
actions and hooks), ``aggregates`` (group, stats, sample), ``schema`` (tables
made and extended at start-up), ``storage`` (databases and transactions),
``sqlite`` (SQLite off gevent's hub), ``settings`` (the database settings
handed over at start-up). A field that does not fit is the
``Invalid`` or ``Missing`` of ``apiphant.errors``.
"""
from apiphant.lazy import lazy

__all__ = ['Table', 'Column', 'database', 'Database', 'Limits', 'OPERATORS',
           'ACTIONS', 'OPTIONAL_ACTIONS', 'SchemaError', 'configure']

# Imported on first use (PEP 562): the daemon hands over its database
# settings through ``apiphant.crud.settings`` whether or not the product has
# tables, and only a product that has them pays for SQLAlchemy.
_HOMES = {'Column': 'columns', 'OPERATORS': 'query', 'Limits': 'query', 'SchemaError': 'schema',
          'Database': 'storage', 'database': 'storage', 'ACTIONS': 'table',
          'OPTIONAL_ACTIONS': 'table', 'Table': 'table', 'configure': 'settings'}


__getattr__, __dir__ = lazy(__name__, {name: f'{__name__}.{home}' for name, home in _HOMES.items()}, __all__)
