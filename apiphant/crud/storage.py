"""Where rows live: a ``Database`` per URL, made from the settings that
``apiphant`` and ``apiphant-background`` hand to ``settings.configure()`` at start-up
(from their command line and its ``APIPHANT_*`` variables; the environment is
not read here).

- ``database_url`` ``none`` (the default): the SQLite file beside the
  product (``<dir>/myproduct.sqlite3`` for ``<dir>/myproduct/``).
- ``sqlite:///path``: that SQLite file.
- ``postgresql://...`` (or ``postgres://``, ``postgresql+psycopg://``):
  PostgreSQL through psycopg 3, which waits cooperatively when gevent
  patched the standard library before psycopg was imported (``apiphant``
  does; psycopg is imported here only when the first engine is made).

``transaction()`` is a write transaction and ``connect()`` a connection for
reads; inside a transaction both give the transaction's connection, so the
writes of generated actions, hooks and a product's own code made in it
commit together. In SQLite one greenlet of the process writes at a time
(``BEGIN IMMEDIATE`` under a gevent lock): writers queue here instead of
failing with "database is locked"; ``busy_timeout`` covers other processes.
Waiting longer than ``database_wait`` for a connection or for the write
lock, or a database that is down, is a 503 with ``Retry-After``, the
driver's message going to the log.

Every ``transaction()`` and ``connect()`` block has a deadline,
``database_timeout`` seconds after it got its connection: no statement
starts past it, and none runs beyond it (SQLite is interrupted at the
deadline; PostgreSQL's ``statement_timeout`` is the same number of seconds
for each statement, so a block ends within twice the timeout at worst).
PostgreSQL waits ``database_wait`` at most for a row lock (``lock_timeout``)
and ``database_connect_timeout`` for a new connection (psycopg's own floor is
2 s). Each of these is a 503, like a database that is down: 504 would say a
gateway timed out, and nginx says that itself; the client may retry.
"""
import contextlib
import importlib.metadata
import logging
import os
import re
import sys
import time
from contextvars import ContextVar

import gevent
import gevent.lock
import sqlalchemy as sa
from gevent.threadpool import ThreadPool
from sqlalchemy import event, exc

from apiphant import metrics
from apiphant.crud import sqlite
from apiphant.errors import ServiceUnavailable
from apiphant.product import ProductError
from apiphant.crud import settings as handed_settings

__all__ = ['Database', 'database', 'database_url', 'parse_url', 'require_psycopg', 'locks_rows', 'RETRY_AFTER', 'PSYCOPG_FLOOR']

log = logging.getLogger('apiphant.crud')

# Refusals at connection time that no retry mends (libpq gives them no SQLSTATE).
_PERMANENT = re.compile(r'FATAL:\s+(database "[^"]*" does not exist|role "[^"]*" does not exist'
                        r'|password authentication failed|.*authentication failed|no pg_hba\.conf entry)')
RETRY_AFTER = 1  # seconds: a pool wait or a lock is usually over by then
_POSTGRESQL = ('postgresql', 'postgres', 'postgresql+psycopg')
# psycopg 3.1.5 to 3.1.13 wait for the server without yielding to gevent
# (measured: three pg_sleep(0.5) in greenlets took 1.5 s on 3.1.13, 0.5 s on 3.1.14).
PSYCOPG_FLOOR = (3, 1, 14)
_databases = {}  # by URL
_DEFAULT = object()
_named = {}  # by (product, the settings handed)


def parse_url(text):
    """The SQLAlchemy URL of a ``database_url`` setting's value, or None for
    ``none`` (or empty): the one parser of the setting, which the scheduler's
    claims use too. ProductError when it is neither SQLite nor PostgreSQL."""
    if not text or text == 'none':
        return None
    try:
        url = sa.engine.make_url(text)
    except exc.ArgumentError:
        url = None
    if url is not None and url.drivername in _POSTGRESQL:
        return url.set(drivername='postgresql+psycopg')
    if url is not None and url.drivername == 'sqlite' and url.database and url.database != ':memory:':
        return url
    raise ProductError(f'the database URL should be sqlite:///PATH, postgresql://... or none, '
                       f'not {text.split(":", 1)[0]}:...')


def database_url(text, product):
    """The SQLAlchemy URL of a setting's value; the SQLite file beside
    ``product`` (a package name) when it is empty or ``none``."""
    url = parse_url(text)
    if url is not None:
        return url
    package = sys.modules.get(product)
    if package is None or not getattr(package, '__file__', None):
        raise ProductError(f'cannot tell where the SQLite file of {product!r} goes; '
                           f'set APIPHANT_DATABASE_URL')
    directory = os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
    return sa.engine.URL.create('sqlite', database=os.path.join(directory, f'{product}.sqlite3'))


def database(product=None):
    """The ``Database`` of ``product`` (a package name; by default the package
    of the calling module): the one every table of the product uses, made
    from the settings handed to ``settings.configure()``."""
    if product is None:
        product = sys._getframe(1).f_globals.get('__name__', '').partition('.')[0]
    settings = handed_settings.handed()
    named = (product, tuple(settings.values()))
    found = _named.get(named)
    if found is None:
        url = database_url(settings['database_url'], product)
        key = url.render_as_string(hide_password=False)
        found = _databases.get(key)
        if found is None:
            found = _databases[key] = Database(url, pool_size=settings['database_pool_size'],
                                               wait=settings['database_wait'],
                                               timeout=settings['database_timeout'],
                                               connect_timeout=settings['database_connect_timeout'])
        _named[named] = found
    return found


def locks_rows(connection):
    """Whether rows read on ``connection`` are to be locked for update: in a
    write transaction on PostgreSQL. SQLite's write lock already keeps the
    other writers out; a connection for reads locks nothing."""
    return connection.dialect.name != 'sqlite' and connection.get_execution_options().get('apiphant_write', False)


class Database:
    """``timeout``: seconds of a block's deadline (0 or None: none);
    ``connect_timeout``: seconds a new PostgreSQL connection may take."""

    def __init__(self, url, *, pool_size=10, wait=5.0, timeout=5.0, connect_timeout=1.0):
        if type(pool_size) is not int or pool_size < 1:
            raise ProductError(f'the database pool size should be a positive integer, not {pool_size!r}')
        self.url = sa.engine.make_url(url)
        self.dialect = self.url.get_backend_name()
        self.pool_size, self.wait = pool_size, wait
        self.timeout, self.connect_timeout = timeout or None, connect_timeout
        if self.dialect == 'sqlite':
            directory = os.path.dirname(os.path.abspath(self.url.database))
            if not os.path.isdir(directory):
                raise ProductError(f'no directory {directory} for the SQLite database')
        else:
            require_psycopg()
        self._engine = None
        self._engine_lock = gevent.lock.Semaphore()
        self._writer = gevent.lock.Semaphore() if self.dialect == 'sqlite' else None
        self._current = ContextVar(f'apiphant.crud.transaction.{id(self)}', default=None)

    def __repr__(self):
        return f'Database({self.url.render_as_string(hide_password=True)!r})'

    @property
    def engine(self):
        """The SQLAlchemy engine, made on first use."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = (self._sqlite_engine() if self.dialect == 'sqlite'
                                    else self._postgresql_engine())
        return self._engine

    def _sqlite_engine(self):
        threads = ThreadPool(self.pool_size)
        path, wait = self.url.database, self.wait
        engine = sa.create_engine(
            self.url, creator=lambda: sqlite.connect(path, threads.apply, wait),
            poolclass=sa.pool.QueuePool, pool_size=self.pool_size, max_overflow=0, pool_timeout=wait)

        @event.listens_for(engine, 'begin')
        def begin(connection):
            # Reads run each statement on its own (autocommit, as PostgreSQL's
            # read committed does); a write transaction takes the lock first.
            if connection.get_execution_options().get('apiphant_write'):
                connection.connection.dbapi_connection.begin_later('BEGIN IMMEDIATE')

        @event.listens_for(engine, 'before_cursor_execute')
        def before_statement(connection, cursor, statement, parameters, context, many):
            cursor.deadline = self._deadline(connection)  # the cursor interrupts SQLite at it
        return engine

    def _postgresql_engine(self):
        # The URL's own options (a search_path) go first; a block with another
        # timeout says so with SET LOCAL.
        options = self.url.query.get('options', '')
        options = ' '.join([options] if isinstance(options, str) else options)
        options += f' -c statement_timeout={_milliseconds(self.timeout)} -c lock_timeout={_milliseconds(self.wait)}'
        engine = sa.create_engine(
            self.url, pool_size=self.pool_size, max_overflow=0, pool_timeout=self.wait,
            connect_args={'connect_timeout': 2, 'options': options.strip()})

        @event.listens_for(engine, 'do_connect')
        def connect(dialect, record, cargs, cparams):
            # psycopg waits 2 s at least; a blackholed server is a 503 sooner.
            timer = gevent.Timeout(self.connect_timeout)
            timer.start()
            try:
                return dialect.loaded_dbapi.connect(*cargs, **cparams)
            except gevent.Timeout as error:
                if error is not timer:
                    raise
                raise dialect.loaded_dbapi.OperationalError(
                    f'no connection within {self.connect_timeout} s') from None
            finally:
                timer.close()

        @event.listens_for(engine, 'before_cursor_execute')
        def before_statement(connection, cursor, statement, parameters, context, many):
            self._deadline(connection)
        return engine

    def check(self):
        """At start-up: a ProductError (one line) when the database refuses
        this process for good (no such database, no such role, failed
        authentication), which no retry mends; a 503 when it is only
        unreachable for now."""
        try:
            with self._unavailable(), self._checkout():
                pass
        except ServiceUnavailable as error:
            cause = error.__context__
            if cause is not None and _PERMANENT.search(str(getattr(cause, 'orig', cause))):
                raise ProductError(f'cannot use {self}: {_one_line(cause)}') from None
            raise

    def _deadline(self, connection):
        """The deadline of the block ``connection`` serves; past it, a 503."""
        deadline = connection.get_execution_options().get('apiphant_deadline')
        if deadline is not None and time.monotonic() >= deadline:
            metrics.database_unavailable()
            log.warning('%s: a statement would start past its deadline', self)
            raise ServiceUnavailable(retry_after=RETRY_AFTER)
        return deadline

    def _begin_block(self, connection, timeout, write):
        """Give the block on ``connection`` its deadline; the timeout to set
        in PostgreSQL when it is not the session's, else None."""
        timeout = self.timeout if timeout is _DEFAULT else timeout or None
        deadline = None if timeout is None else time.monotonic() + timeout
        connection.execution_options(apiphant_write=write, apiphant_deadline=deadline)
        if self.dialect != 'sqlite' and timeout != self.timeout:
            return _milliseconds(timeout)
        return None

    def in_transaction(self):
        """Whether this greenlet is inside a ``transaction()`` block of this database."""
        return self._current.get() is not None

    @contextlib.contextmanager
    def transaction(self, *, timeout=_DEFAULT):
        """``with database().transaction() as connection:`` a write
        transaction, committed when the block ends and rolled back when it
        raises; a transaction already open in this greenlet is joined.
        ``timeout``: seconds of its deadline instead of ``database_timeout``
        (None: none), for a long job of the product's own."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        with self._unavailable(), self._write_lock():
            with self._checkout() as connection:
                token = self._current.set(connection)
                try:
                    statement_timeout = self._begin_block(connection, timeout, True)
                    with connection.begin():
                        if statement_timeout is not None:
                            connection.exec_driver_sql(f'SET LOCAL statement_timeout = {statement_timeout}')
                        yield connection
                finally:
                    self._current.reset(token)

    @contextlib.contextmanager
    def connect(self, *, timeout=_DEFAULT):
        """``with database().connect() as connection:`` a connection for
        reads, each statement on its own; the open transaction when there is
        one. ``timeout`` as for ``transaction()``."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        with self._unavailable(), self._checkout() as connection:
            if self.dialect != 'sqlite':
                connection.execution_options(isolation_level='AUTOCOMMIT')
            statement_timeout = self._begin_block(connection, timeout, False)
            if statement_timeout is not None:
                connection.exec_driver_sql(f'SET statement_timeout = {statement_timeout}')
                try:
                    yield connection
                finally:  # the session's timeout back, for the next user of the connection
                    connection.execution_options(apiphant_deadline=None)
                    connection.exec_driver_sql(f'SET statement_timeout = {_milliseconds(self.timeout)}')
                return
            yield connection

    def _checkout(self):
        """A connection of the pool; the time it took is a database wait."""
        started = time.monotonic()
        try:
            return self.engine.connect()
        finally:  # a wait that timed out counts too
            metrics.database_wait(time.monotonic() - started)

    @contextlib.contextmanager
    def _write_lock(self):
        if self._writer is None:
            yield
            return
        started = time.monotonic()
        turn = self._writer.acquire(timeout=self.wait)
        metrics.database_wait(time.monotonic() - started)
        if not turn:
            metrics.database_unavailable()
            log.warning('%s: no turn to write within %ss', self, self.wait)
            raise ServiceUnavailable(retry_after=RETRY_AFTER)
        try:
            yield
        finally:
            self._writer.release()

    @contextlib.contextmanager
    def _unavailable(self):
        try:
            yield
        except (exc.OperationalError, exc.TimeoutError) as error:
            metrics.database_unavailable()
            if _late(error):
                log.warning('%s: a statement ran out of time: %s', self, _one_line(error))
            else:
                log.warning('%s is unavailable: %s', self, _one_line(error))
            raise ServiceUnavailable(retry_after=RETRY_AFTER) from None
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            metrics.database_unavailable()
            log.warning('%s: connection lost: %s', self, _one_line(error))
            raise ServiceUnavailable(retry_after=RETRY_AFTER) from None


def _milliseconds(timeout):
    return 0 if timeout is None else max(1, round(timeout * 1000))  # 0: none


def _late(error):
    """A statement cut at its deadline: SQLite interrupted, or PostgreSQL's
    statement or lock timeout."""
    error = getattr(error, 'orig', None) or error
    return getattr(error, 'sqlstate', None) in ('57014', '55P03') or str(error) == 'interrupted'


def require_psycopg():
    """A ProductError (one line, what to install) unless a psycopg that
    cooperates with gevent is installed."""
    try:
        version = importlib.metadata.version('psycopg')
    except importlib.metadata.PackageNotFoundError:
        raise ProductError("PostgreSQL needs psycopg: pip install 'apiphant[postgresql]'") from None
    numbers = tuple(int(part) if part.isdigit() else 0 for part in version.split('.')[:3])
    if numbers < PSYCOPG_FLOOR:
        floor = '.'.join(map(str, PSYCOPG_FLOOR))
        raise ProductError(f'psycopg {version} blocks gevent while it waits for the server: '
                           f'pip install "psycopg[binary]>={floor}"')


def _one_line(error):
    error = getattr(error, 'orig', None) or error
    return ' '.join(str(error).split()) or type(error).__name__
