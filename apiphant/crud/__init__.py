"""Generated CRUD: a target module that declares a ``Table`` gets its actions.

::

    from apiphant.crud import Table, Column

    tasks = Table('tasks',
        title=Column(str, required=True, max_length=200),
        is_completed=Column(bool, default=False),
    )

``POST /api/v0/tasks/create|read|update|delete|list`` then work, over SQLite
beside the product or the PostgreSQL of ``APIPHANT_DATABASE_URL``. Modules:
``columns`` (kinds and checks), ``fields`` (a request's names, ``id`` and
``version``), ``query`` (the where language, sorting, paging), ``table`` (the
actions and hooks), ``aggregates`` (group, stats, sample), ``schema`` (tables
made and extended at start-up), ``storage`` (databases and transactions),
``sqlite`` (SQLite off gevent's hub). A field that does not fit is the
``Invalid`` or ``Missing`` of ``apiphant.errors``.
"""
from apiphant.crud.columns import Column
from apiphant.crud.query import OPERATORS, Limits
from apiphant.crud.schema import SchemaError
from apiphant.crud.storage import Database, database
from apiphant.crud.table import ACTIONS, OPTIONAL_ACTIONS, Table

__all__ = ['Table', 'Column', 'database', 'Database', 'Limits', 'OPERATORS',
           'ACTIONS', 'OPTIONAL_ACTIONS', 'SchemaError']
