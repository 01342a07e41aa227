"""The tables of apiphant's own identity sources (``Accounts``, ``ApiKeys``)
in the product's database: the ``Database`` generated CRUD uses, the one
the settings name (``storage.database(product)``), SQLite or PostgreSQL.

Each source makes its SQLAlchemy tables on a ``MetaData`` of its own, with
names that start with its ``tables`` prefix (``apiphant_`` by default), and
creates those missing once per process: when the daemon starts, or on
first use when the database cannot be reached then. Creation runs in one
transaction, under SQLite's write lock or a PostgreSQL advisory lock, so
that processes starting together agree. A table that exists is left as it
is.
"""
import logging
import re
import time

import sqlalchemy as sa

from apiphant.crud import storage
from apiphant.errors import ServiceUnavailable

__all__ = ['Store', 'now', 'prefix']

log = logging.getLogger('apiphant')

_PREFIX = re.compile(r'[a-z][a-z0-9_]{0,30}\Z')
_KEY = "hashtextextended(current_schema() || '.apiphant.auth.' || :name, 0)"


def prefix(value):
    """A table name prefix, checked: lower-case letters, digits, ``_``."""
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise ValueError(f'tables= should be a prefix of lower-case letters, digits and _, like '
                         f'\'apiphant_\', not {value!r}')
    return value


def now():
    return time.time()


class Store:
    """The tables of one source in the database of ``product``."""

    def __init__(self, product, metadata):
        self.product = product
        self.metadata = metadata
        self._database = None
        self._prepared = storage.Once(self._create)

    @property
    def database(self):
        if self._database is None:
            self._database = storage.database(self.product)
        return self._database

    def prepare(self):
        """Create the missing tables once per process (bounded as generated
        tables are: storage.Once); the ``Database``."""
        if not self._prepared.done:
            self._prepared(self.database.wait)
        return self._database

    def _create(self):
        database = self.database
        with database.transaction(timeout=None) as connection:
            if connection.dialect.name == 'postgresql':
                name = ','.join(sorted(self.metadata.tables))
                connection.execute(sa.text('SELECT pg_advisory_xact_lock(' + _KEY + ')'), {'name': name})
            missing = [table for name, table in self.metadata.tables.items()
                       if not sa.inspect(connection).has_table(name)]
            if missing:
                self.metadata.create_all(connection, tables=missing)
                log.info('created table %s in %s', ', '.join(t.name for t in missing), database)

    def start(self):
        """At server start: check the database (one that refuses the product
        for good stops start-up) and create the tables, or leave that to
        the first use when the database cannot be reached yet."""
        try:
            self.database.check()
            self.prepare()
        except ServiceUnavailable:
            log.warning('%s: the database is unavailable at start-up; the tables %s will be created on '
                        'first use', self.product, ', '.join(sorted(self.metadata.tables)))
