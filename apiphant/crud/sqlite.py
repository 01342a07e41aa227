"""SQLite under gevent: a call into the library that may take long runs in a thread.

A call into SQLite is a C call that holds gevent's hub: a query scanning a big
table, or a write waiting on another process's lock (``busy_timeout``), would
freeze every request of the process, echo included. Here each statement,
commit, rollback and connect runs in a thread of the database's own pool
while the calling greenlet waits cooperatively; the library releases the GIL
while it works and while it waits.

Rules that keep the number of thread hops low (each costs ~50 µs):

- a statement and the fetching of all its rows are one hop (results are
  buffered; generated queries are paged, so they are small);
- ``BEGIN`` waits and goes with the transaction's first statement;
- commit and rollback outside a transaction are no hops at all.

A statement outside a write transaction (a read, mostly) is first tried on
the hub's own thread, with no hop, on the database's ``Hub`` connection
(``busy_timeout`` 0: it never waits for a lock there; SQLite says busy, and
it runs in a thread, which waits). A progress handler stops it past
``HUB_STEPS`` steps of SQLite's machine or ``HUB_TIME`` seconds, whichever
comes first, and it runs again in a thread. (Measured: a read by key takes
~30 µs and a few steps, a count over 2,500 index entries ~110 µs and ~1,500
steps, a sort of 10,000 rows ~800 µs and 60,000 steps; a thread hop costs
~50 µs, and under load the wait for the GIL to hand the rows back.) No
statement runs there concurrently: a C call does not yield to another
greenlet.

A connection is used by one greenlet at a time (SQLAlchemy's pool sees to
it), so moving it between threads is safe: ``check_same_thread=False``.

A cursor given a ``deadline`` (``time.monotonic()``) is interrupted there:
a timer of the hub calls ``sqlite3_interrupt``, which is made to be called
from another thread, and the statement fails with "interrupted" (a write
transaction it was in is rolled back).
"""
import collections
import sqlite3
import time

import gevent
import gevent.monkey

__all__ = ['connect', 'Connection', 'Hub', 'HUB_STEPS']

HUB_STEPS = 20_000  # steps of SQLite's machine a statement may take on the hub
HUB_TIME = 0.001  # seconds, likewise
_PROGRESS_STEPS = 1000  # steps between two calls of the progress handler
_thread_ident = gevent.monkey.get_original('_thread', 'get_ident')  # the thread's, not the greenlet's


class Hub:
    """The connection of the statements run on the hub's thread (the thread
    that made this), opened on first use through ``run`` (a thread)."""

    def __init__(self, path, run):
        self.path, self.run = path, run
        self.thread = _thread_ident()
        self.raw = None
        self.left = None  # steps left / _PROGRESS_STEPS; None: no limit
        self.until = 0.0  # a perf_counter
        self.spent = False

    def here(self):
        """Whether this is the hub's thread."""
        return _thread_ident() == self.thread

    def connection(self):
        if self.raw is None:
            raw = self.run(_open, (self.path, 0))  # busy_timeout 0
            raw.set_progress_handler(self._progress, _PROGRESS_STEPS)
            if self.raw is None:
                self.raw = raw
            else:  # another greenlet opened one meanwhile
                raw.close()
        return self.raw

    def _progress(self):
        if self.left is None:
            return 0
        self.left -= 1
        if self.left < 0 or time.perf_counter() > self.until:
            self.spent = True
            return 1
        return 0

    def execute(self, statement, parameters):
        """``(rows or None, description, rowcount, lastrowid)``, or None
        when the statement is to run in a thread instead (too long, busy)."""
        raw = self.connection()
        self.left, self.spent = HUB_STEPS // _PROGRESS_STEPS, False
        self.until = time.perf_counter() + HUB_TIME
        try:
            cursor = raw.execute(statement, parameters)
            rows = collections.deque(cursor.fetchall()) if cursor.description is not None else None
            found = rows, cursor.description, cursor.rowcount, cursor.lastrowid
        except sqlite3.OperationalError as error:
            if self.spent or 'locked' in str(error) or 'busy' in str(error):
                return None
            raise
        finally:
            self.left = None
        if raw.in_transaction:  # a statement that began one (none of apiphant's): undone, and run in a thread
            raw.rollback()
            return None
        return found


def connect(path, apply, busy_timeout, hub=None):
    """A connection to the SQLite file at ``path`` whose calls go through
    ``apply(function, args)`` (a thread pool's); ``hub``: a ``Hub`` to try
    statements outside a transaction on first."""
    run = _raising(apply)
    return Connection(run(_open, (path, busy_timeout)), run, hub)


def _raising(apply):
    """``apply`` whose errors are raised in the caller, not printed by the
    pool: a locked or interrupted statement is the caller's to answer."""
    def run(function, args):
        value, error = apply(_capture, (function, args))
        if error is not None:
            raise error
        return value
    return run


def _capture(function, args):
    try:
        return function(*args), None
    except Exception as error:
        return None, error


def _open(path, busy_timeout):
    raw = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        for pragma in (
            'PRAGMA journal_mode = WAL',  # readers never wait for the writer
            # A commit is in the WAL file (the OS's page cache) before it is
            # acknowledged: it survives the process being killed; a power cut
            # may lose the last ones (FULL would fsync every commit).
            'PRAGMA synchronous = NORMAL',
            f'PRAGMA busy_timeout = {int(busy_timeout * 1000)}',  # for other processes' writes
            'PRAGMA foreign_keys = ON',
            'PRAGMA case_sensitive_like = ON',  # LIKE as in PostgreSQL
        ):
            raw.execute(pragma).fetchall()
    except BaseException:
        raw.close()
        raise
    return raw


def _execute(cursor, begin, statement, parameters, many):
    if begin is not None:
        cursor.execute(begin)
    if many:
        cursor.executemany(statement, parameters)
    else:
        cursor.execute(statement, parameters)
    return collections.deque(cursor.fetchall()) if cursor.description is not None else None


class Connection:
    """The DB-API connection SQLAlchemy sees."""

    def __init__(self, raw, run, hub=None):
        self._raw = raw
        self._run = run
        self._begin = None
        self._hub = hub

    def begin_later(self, statement):
        """Send ``statement`` (``BEGIN IMMEDIATE``, say) with the next one."""
        self._begin = statement

    def cursor(self):
        return Cursor(self._raw.cursor(), self)

    def commit(self):
        self._end(self._raw.commit)

    def rollback(self):
        self._end(self._raw.rollback)

    def _end(self, function):
        self._begin = None  # never sent: nothing to end
        if self._raw.in_transaction:
            self._run(function, ())

    def close(self):
        self._begin = None
        self._run(self._raw.close, ())

    def __getattr__(self, name):  # create_function, isolation_level, ...
        return getattr(self._raw, name)


class Cursor:
    """A cursor whose statement runs, rows and all, in one thread hop."""

    def __init__(self, raw, connection):
        self._raw = raw
        self._connection = connection
        self._rows = None
        self._found = None  # (description, rowcount, lastrowid) of a statement run on the hub
        self.arraysize = 1
        self.deadline = None

    def execute(self, statement, parameters=()):
        return self._execute(statement, parameters, False)

    def executemany(self, statement, parameters):
        return self._execute(statement, parameters, True)

    def _execute(self, statement, parameters, many):
        connection = self._connection
        begin, connection._begin = connection._begin, None
        hub, self._found = connection._hub, None
        if hub is not None and begin is None and not many and not connection._raw.in_transaction and hub.here():
            found = hub.execute(statement, parameters)
            if found is not None:
                self._rows, self._found = found[0], found[1:]
                return self
        arguments = (self._raw, begin, statement, parameters, many)
        if self.deadline is None:
            self._rows = connection._run(_execute, arguments)
            return self
        timer = gevent.get_hub().loop.timer(max(0.0, self.deadline - time.monotonic()))
        timer.start(connection._raw.interrupt)
        try:
            self._rows = connection._run(_execute, arguments)
        finally:
            timer.close()
        return self

    def fetchone(self):
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size=None):
        rows, count = self._rows or (), self.arraysize if size is None else size
        return [rows.popleft() for _ in range(min(count, len(rows)))]

    def fetchall(self):
        rows, self._rows = self._rows, None
        return list(rows or ())

    def close(self):
        self._rows = None
        self._raw.close()

    @property
    def description(self):
        return self._raw.description if self._found is None else self._found[0]

    @property
    def rowcount(self):
        return self._raw.rowcount if self._found is None else self._found[1]

    @property
    def lastrowid(self):
        return self._raw.lastrowid if self._found is None else self._found[2]

    def __iter__(self):
        return iter(self.fetchone, None)
