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

A ``transaction()`` opened inside another one is a SAVEPOINT: when its block
raises (a ``Taken`` on a unique value, say), only its own statements are
undone, and the outer transaction goes on, on PostgreSQL too (where an error
would otherwise abort the whole transaction).

The hot paths of generated actions skip SQLAlchemy's per-call work (~0.3 ms
of CPU a statement): ``read_key()`` and ``insert()`` run a statement
compiled once per database straight through the driver, with SQLAlchemy's
own type conversions. In SQLite, reads outside a write transaction are
tried on the hub's thread first, with no thread hop, and handed to a thread
when they would wait for a lock or take long (``sqlite.Hub``). Creates
queued at the same time in SQLite are written in one transaction, in one
thread hop (group commit); each is answered only after that COMMIT. In
PostgreSQL a create outside a transaction is one round trip (the INSERT in
autocommit), and the statements are prepared on each connection.

A ``transaction()`` writes, just before its COMMIT, the changes that the
watched tables noted in it (``changes``), and once committed calls
``on_changes`` (the process's ``watch.Live`` reads them then); SQLite's
group commit writes a watched create's change in its own transaction.

``healthy()`` answers whether the database answered a bounded ``SELECT 1``
within the last second; ``GET /health`` says 503 when one does not.
"""
import collections
import contextlib
import importlib.metadata
import logging
import os
import re
import sqlite3
import sys
import time
from contextvars import ContextVar

import gevent
import gevent.event
import gevent.lock
import sqlalchemy as sa
from gevent.threadpool import ThreadPool
from sqlalchemy import event, exc

from apiphant import metrics
from apiphant.crud import changes, sqlite
from apiphant.errors import ServiceUnavailable
from apiphant.product import ProductError
from apiphant.crud import settings as handed_settings

__all__ = ['Database', 'database', 'database_url', 'parse_url', 'require_psycopg', 'locks_rows', 'healthy', 'rows',
           'RETRY_AFTER', 'PSYCOPG_FLOOR']

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


def healthy():
    """Whether every database this process made answers (``Database.healthy``)."""
    return all([found.healthy() for found in list(_databases.values())])


_shapes = {}  # (dialect name, SQLAlchemy's cache key): _Compiled, for rows()
_SHAPES = 2000  # at most; past it, cleared (a where of many shapes should not hold memory for good)


def rows(connection, statement):
    """All rows (tuples) of the SELECT ``statement`` on ``connection`` (a
    ``transaction()`` or ``connect()`` block's), compiled once per shape
    (SQLAlchemy's cache key: the statement with its values left out) and run
    through the driver without SQLAlchemy's execution context (~0.15 ms a
    statement); the same errors as ``connection.execute``."""
    key = statement._generate_cache_key()
    dialect = connection.dialect
    found = _shapes.get((dialect.name, key.key))
    if found is None:
        found = _Compiled(statement, dialect, None, key)
        if found.expanding:  # IN lists rendered per call: SQLAlchemy's own path
            return [tuple(row) for row in connection.execute(statement)]
        if len(_shapes) >= _SHAPES:
            _shapes.clear()
        _shapes[dialect.name, key.key] = found
    parameters = found.compiled.construct_params(extracted_parameters=key[1], escape_names=False)
    database = connection.info.get('apiphant_database')
    deadline = database._deadline(connection) if database is not None else None
    raw = connection.connection.dbapi_connection
    cursor = raw.cursor()
    arguments = found.arguments(parameters)
    try:
        if dialect.name == 'sqlite':
            cursor.deadline = deadline
        cursor.execute(found.sql, arguments)
        fetched, description = cursor.fetchall(), cursor.description
    except dialect.loaded_dbapi.Error as error:
        invalidated = dialect.is_disconnect(error, raw, cursor)
        if invalidated:  # as SQLAlchemy does: the pool's older connections are as dead (a restart)
            connection.engine.pool._invalidate(connection.connection, error, _checkin=False)
            connection.invalidate(error)
        raise exc.DBAPIError.instance(found.sql, arguments, error, dialect.loaded_dbapi.Error,
                                      connection_invalidated=invalidated) from None
    finally:
        cursor.close()
    return [found.row(row, description) for row in fetched]


class Once:
    """Work done once per process on the database (creating tables), and
    bounded: while the database cannot be reached, callers do not queue one
    connect timeout after another (past ``wait`` seconds, a 503), and those
    that waited for an attempt that failed fail with it."""

    __slots__ = ('work', 'done', 'failures', 'lock')

    def __init__(self, work):
        self.work = work
        self.done = False
        self.failures = 0
        self.lock = gevent.lock.Semaphore()

    def __call__(self, wait):
        if self.done:
            return
        failures = self.failures
        if not self.lock.acquire(timeout=wait):
            raise ServiceUnavailable(retry_after=RETRY_AFTER)
        try:
            if not self.done:
                if failures != self.failures:
                    raise ServiceUnavailable(retry_after=RETRY_AFTER)
                try:
                    self.work()
                except ServiceUnavailable:
                    self.failures += 1
                    raise
                self.done = True
        finally:
            self.lock.release()


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
        self._compiled = {}  # (statement, keys): _Compiled
        self._threads = None  # SQLite's thread pool
        self._hub = None  # SQLite: the connection of the statements tried on the hub's thread (sqlite.Hub)
        self._inserts = collections.deque()  # SQLite: creates waiting for the group commit
        self._committing = False
        self._health = (None, -2.0)  # (the last check's answer, when it ended)
        self._health_check = None  # the check under way (a greenlet)
        self.on_changes = None  # called after a transaction that recorded changes committed (watch)

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
        threads = self._threads = ThreadPool(self.pool_size)
        path, wait = self.url.database, self.wait
        hub = self._hub = sqlite.Hub(path, sqlite._raising(threads.apply))
        engine = sa.create_engine(
            self.url, creator=lambda: sqlite.connect(path, threads.apply, wait, hub),
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
        connection.info['apiphant_database'] = self
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
        if current is not None:  # a savepoint: an error here undoes this block only
            noted = changes.mark(current)
            try:
                with current.begin_nested():
                    yield current
            except BaseException:
                changes.undo(current, noted)
                raise
            return
        recorded = False
        with self._unavailable(), self._write_lock():
            with self._checkout() as connection:
                token = self._current.set(connection)
                try:
                    statement_timeout = self._begin_block(connection, timeout, True)
                    with connection.begin():
                        changes.begin(connection)
                        if statement_timeout is not None:
                            connection.exec_driver_sql(f'SET LOCAL statement_timeout = {statement_timeout}')
                        yield connection
                        recorded = changes.flush(connection)
                finally:
                    changes.forget(connection)
                    self._current.reset(token)
        if recorded and self.on_changes is not None:
            self.on_changes()

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

    # The hot paths: a statement compiled once, straight through the driver.

    def _compile(self, statement, keys=None):
        key = (statement, keys)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _Compiled(statement, self.engine.dialect, keys)
        return found

    def read_key(self, statement, parameters):
        """The row (a tuple) that ``statement``, a read of at most one row by
        its primary key, finds with ``parameters``, or None; outside any
        transaction (in one, it runs on the transaction's connection). SQLite
        runs it on this thread when it is the hub's, else, and when the
        database is busy, in a thread."""
        current = self._current.get()
        if current is not None:
            row = current.execute(statement, parameters).first()
            return None if row is None else tuple(row)
        compiled = self._compile(statement)
        with self._unavailable():
            if self.dialect != 'sqlite':
                return self._postgresql(compiled, parameters)
            self.engine  # noqa: B018 - made with its Hub
            if self._hub.here():
                try:
                    found = self._hub.execute(compiled.sql, compiled.arguments(parameters))
                except sqlite3.Error as error:
                    raise exc.DBAPIError.instance(compiled.sql, parameters, error, sqlite3.Error) from None
                if found is not None:
                    rows = found[0]
                    return compiled.row(rows[0]) if rows else None
            rows = self._sqlite_in_thread(compiled, parameters)
            return compiled.row(rows[0]) if rows else None

    def insert(self, statement, values, record=None):
        """The row (a tuple) that ``statement``, an ``INSERT ... RETURNING``,
        stores with ``values``, committed; in a transaction, in it. An
        IntegrityError as SQLAlchemy raises it, a 503 when the database
        cannot be had. ``record(row)``, SQLite's only: the parameters of
        the change log's row (``changes.SQLITE_RECORD``) for the stored row,
        written in the same transaction."""
        current = self._current.get()
        if current is not None:
            return tuple(current.execute(statement, values).one())
        compiled = self._compile(statement, tuple(sorted(values)))
        recorder = None
        if record is not None:
            if self.dialect != 'sqlite':
                raise ValueError('a create recorded in the group commit is SQLite\'s')
            recorder = compiled.row, record  # run in the pool's thread, with the raw row
        with self._unavailable():
            if self.dialect != 'sqlite':
                return self._postgresql(compiled, values, write=True)
            self.engine  # noqa: B018 - made with its Hub
            if not self._hub.here():  # another thread (a gevent hub of its own): no group commit
                with self._write_lock():
                    raw = self._checkout_raw()
                    try:
                        (rows, error), = self._sqlite_run(
                            raw, _insert_all, ([(compiled.sql, compiled.arguments(values), recorder)],), compiled.sql)
                    finally:
                        raw.close()
                if error is not None:
                    raise exc.DBAPIError.instance(compiled.sql, values, error, sqlite3.Error)
                if record is not None and self.on_changes is not None:
                    self.on_changes()
                return compiled.row(rows[0])
            done = gevent.event.AsyncResult()
            self._inserts.append((compiled, values, recorder, done))
            if not self._committing:
                self._committing = True
                gevent.spawn(self._group_commit)
            return done.get()

    def data_version(self):
        """SQLite: a number that changes when a connection other than the
        hub's commits (another process, or this one's pool): ``PRAGMA
        data_version`` on the hub's own connection, on the hub's thread."""
        self.engine  # noqa: B018 - made with its Hub
        return self._hub.connection().execute('PRAGMA data_version').fetchall()[0][0]  # all: no read left open

    def _postgresql(self, compiled, parameters, write=False):
        """One statement in autocommit on a connection of the pool, prepared."""
        raw = self._checkout_raw()
        try:
            driver = raw.driver_connection
            driver.autocommit = True
            try:
                cursor = driver.execute(compiled.sql, compiled.arguments(parameters), prepare=True)
                rows, description = cursor.fetchall(), cursor.description
            finally:
                if not driver.closed:
                    driver.autocommit = False  # as the pool's other users expect it
        except self.engine.dialect.loaded_dbapi.Error as error:
            invalidated = self.engine.dialect.is_disconnect(error, raw, None)
            if invalidated:  # as SQLAlchemy does: the pool's older connections are as dead (a restart)
                self.engine.pool._invalidate(raw, error, _checkin=False)
                raw.invalidate(error)
            raise exc.DBAPIError.instance(compiled.sql, parameters, error, self.engine.dialect.loaded_dbapi.Error,
                                          connection_invalidated=invalidated) from None
        finally:
            raw.close()
        if write:
            return compiled.row(rows[0], description)
        return compiled.row(rows[0], description) if rows else None

    def _checkout_raw(self):
        started = time.monotonic()
        try:
            return self.engine.raw_connection()
        finally:
            metrics.database_wait(time.monotonic() - started)

    def _sqlite_in_thread(self, compiled, parameters):
        raw = self._checkout_raw()
        try:
            return self._sqlite_run(raw, _statement, (compiled.sql, compiled.arguments(parameters)), compiled.sql)
        finally:
            raw.close()

    def _sqlite_run(self, raw, function, arguments, what):
        """``function(sqlite3_connection, *arguments)`` in a thread, interrupted at the deadline."""
        connection = raw.driver_connection
        timer = None
        if self.timeout is not None:
            timer = gevent.get_hub().loop.timer(self.timeout)
            timer.start(connection._raw.interrupt)
        try:
            return connection._run(function, (connection._raw, *arguments))
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(what, None, error, sqlite3.Error) from None
        finally:
            if timer is not None:
                timer.close()

    def _group_commit(self):
        """Write the queued creates, all those queued once the write lock is
        had, in one transaction; answer each once it committed."""
        try:
            while self._inserts:
                batch = []
                try:
                    with self._write_lock():
                        batch = list(self._inserts)
                        self._inserts.clear()
                        raw = self._checkout_raw()
                        try:
                            items = [(compiled.sql, compiled.arguments(values), recorder)
                                     for compiled, values, recorder, _ in batch]
                            results = self._sqlite_run(raw, _insert_all, (items,), items[0][0])
                        finally:
                            raw.close()
                except BaseException as error:  # no turn, or the transaction failed: each of them fails
                    if not batch:
                        batch = list(self._inserts)
                        self._inserts.clear()
                    for *_, done in batch:
                        done.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                if self.on_changes is not None and any(recorder is not None for _, _, recorder, _ in batch):
                    self.on_changes()
                for (compiled, values, _, done), (rows, error) in zip(batch, results):
                    if error is None:
                        done.set(compiled.row(rows[0]))
                    else:
                        done.set_exception(exc.DBAPIError.instance(compiled.sql, values, error, sqlite3.Error))
        finally:
            self._committing = False

    def close(self):
        """Close this database's connections (the pool's; with SQLite, the
        hub's and the pool's threads; the health check's): at the end of a
        test or a script, outside any block of this database. A later use
        connects again."""
        with self._engine_lock:
            engine, self._engine = self._engine, None
            hub, self._hub = self._hub, None
            threads, self._threads = self._threads, None
        self._compiled.clear()
        if engine is not None:
            engine.dispose()
        if hub is not None and hub.raw is not None:
            hub.raw.close()
        if threads is not None:
            threads.kill()
        health, self._health_connection = getattr(self, '_health_connection', None), None
        if health is not None:
            _close_quietly(health)

    # Health

    def healthy(self):
        """Whether the database answered a ``SELECT 1`` (bounded by the
        connect timeout, or 1 s) lately: a check at most once a second,
        whose answer the callers in between share; it runs in a greenlet
        of its own, on a connection of its own, and never holds the hub."""
        answer, ended = self._health
        if time.monotonic() - ended < 1.0:
            return answer
        check = self._health_check
        if check is None:
            check = self._health_check = gevent.spawn(self._check_health)
        check.join()
        return self._health[0]

    def _check_health(self):
        bound = max(1.0, self.connect_timeout or 0)
        answer = False
        try:
            with gevent.Timeout(bound):
                answer = self._select_1()
        except gevent.Timeout:
            log.warning('%s: no answer to SELECT 1 within %s s', self, bound)
        except Exception as error:
            log.warning('%s: SELECT 1 failed: %s', self, _one_line(error))
        finally:
            self._health = (answer, time.monotonic())
            self._health_check = None
            if not answer:
                self._close_health_connection()

    def _select_1(self):
        if self.dialect == 'sqlite':  # a new connection, which would not create the file; not the pool's threads
            return sqlite._raising(gevent.get_hub().threadpool.apply)(_sqlite_select_1, (self.url.database,)) == 1
        connection = getattr(self, '_health_connection', None)
        if connection is None or connection.closed:  # of its own: a full pool is no sign of a database down
            dialect = self.engine.dialect
            cargs, cparams = dialect.create_connect_args(self.url)
            connection = self._health_connection = dialect.loaded_dbapi.connect(
                *cargs, **{**cparams, 'autocommit': True, 'connect_timeout': 2})
        return connection.execute('SELECT 1').fetchone()[0] == 1

    def _close_health_connection(self):
        connection = getattr(self, '_health_connection', None)
        self._health_connection = None
        if connection is not None:
            gevent.spawn(_close_quietly, connection)

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


class _Compiled:
    """A statement compiled once for a dialect: its SQL, how its parameters
    go to the driver, how its columns come back (SQLAlchemy's processors)."""

    def __init__(self, statement, dialect, keys, cache_key=None):
        extra = {} if cache_key is None else {'cache_key': cache_key}
        compiled = self.compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None,
                                                     **extra)
        self.sql = compiled.string
        self.expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
        processors = compiled._bind_processors
        self._names = compiled.positiontup  # None: named parameters (psycopg's %(name)s)
        self._binds = [(name, processors.get(name)) for name in (self._names or compiled.binds)]
        self._literals = {name: bind.effective_value for name, bind in compiled.binds.items()}  # version + 1's 1
        escaped = compiled.escaped_bind_names or {}
        self._keys = [escaped.get(name, name) for name, _ in self._binds]  # as the SQL names them
        self._dialect = dialect
        self._types = [type_ for _, _, _, type_ in compiled._result_columns]
        self._results = None  # made with the first answer's types (PostgreSQL's numeric processors need them)

    def arguments(self, parameters):
        values = []
        for name, process in self._binds:
            value = parameters[name] if name in parameters else self._literals[name]
            values.append(value if process is None or value is None else process(value))
        if self._names is not None:
            return values
        return dict(zip(self._keys, values))

    def row(self, row, description=None):
        """The values of ``row``; ``description``: the cursor's, for PostgreSQL."""
        results = self._results
        if results is None:
            codes = [None] * len(self._types) if description is None else [column[1] for column in description]
            results = [type_._cached_result_processor(self._dialect, code) for type_, code in zip(self._types, codes)]
            results = self._results = results if any(results) else ()
        if not results:
            return tuple(row)
        return tuple(value if process is None else process(value) for process, value in zip(results, row))


def _statement(connection, sql, arguments):
    return connection.execute(sql, arguments).fetchall()


def _insert_all(connection, items):
    """One transaction of INSERTs: ``[(rows, None) or (None, IntegrityError)]``,
    committed; any other error rolls it back and fails them all. An item's
    recorder, ``(row, record)``, writes the change log's row of what it stored."""
    results = []
    connection.execute('BEGIN IMMEDIATE')
    try:
        for sql, arguments, recorder in items:
            try:
                rows = connection.execute(sql, arguments).fetchall()
            except sqlite3.IntegrityError as error:  # this statement is undone, not the transaction
                results.append((None, error))
                continue
            if recorder is not None:
                row, record = recorder
                connection.execute(changes.SQLITE_RECORD, record(row(rows[0])))
            results.append((rows, None))
        connection.execute('COMMIT')
    except BaseException:
        if connection.in_transaction:
            connection.execute('ROLLBACK')
        raise
    return results


def _sqlite_select_1(path):
    with contextlib.closing(sqlite3.connect(f'file:{path}?mode=rw', uri=True, timeout=1.0)) as connection:
        connection.execute('PRAGMA schema_version').fetchone()  # reads the file
        return connection.execute('SELECT 1').fetchone()[0]


def _close_quietly(connection):
    try:
        connection.close()
    except Exception:
        pass


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
