"""Who runs a slot: a scheduler alone on its host (a lock file keeps a second
one from starting), or whichever scheduler wins the claim in PostgreSQL.

Every scheduler of a product, on any host, inserts ``(product, task, slot)``
into ``apiphant_task_claims`` before it runs that slot; the primary key lets
one insert win, so each slot runs once, and whichever scheduler is alive wins
the next one. (A transaction-scoped advisory lock is not enough: it is
released before the other host looks.) A session advisory lock, held for the
length of a run, keeps another host from starting the task's next slot while
it still runs here; PostgreSQL drops it if this host dies. The last run of
each task is kept in ``apiphant_task_runs`` for ``--list``.
"""
import contextlib
import fcntl
import logging
import os
import time

import gevent
import gevent.lock

from apiphant.background.schedule import slot_start

__all__ = ['CannotStart', 'hold_lock', 'Alone', 'Claims', 'database_url']

log = logging.getLogger('apiphant.background')


class CannotStart(Exception):
    """The scheduler cannot start; the message is one line saying why."""


def hold_lock(directory, package):
    """Keep a second scheduler of ``package`` on this host from starting: a
    lock on a file, held while the returned file stays open (the kernel drops
    it when the process ends, even by SIGKILL, so nothing is left stale)."""
    path = os.path.join(directory, f'apiphant-background-{package}.lock')
    try:
        lock = open(path, 'a+', encoding='utf-8')
    except OSError as error:
        raise CannotStart(f'cannot open the lock file {path}: {error.strerror}') from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or 'another process'
        lock.close()
        raise CannotStart(f'another apiphant-background for {package} runs on this host '
                          f'({holder}, lock {path}); to run several, give them a database '
                          f'(--database-url)') from None
    lock.truncate(0)
    lock.write(f'pid {os.getpid()}\n')
    lock.flush()
    return lock


class Alone:
    """No database: this scheduler runs every slot, and remembers nothing."""

    shared = False

    def describe(self):
        return 'alone, in memory'

    def claim(self, task, slot):
        return True

    def finish(self, task, slot, outcome):
        pass

    def runs(self):
        return {}

    def close(self):
        pass


def database_url(text):
    """The libpq URL to claim slots in, from the ``database_url`` setting
    (parsed by ``apiphant.crud.storage.parse_url``, the one parser of it).
    None, to run alone, for ``none`` (or empty) and for a SQLite file, which
    only one host can use. ValueError otherwise."""
    from apiphant.crud.storage import parse_url
    from apiphant.product import ProductError
    try:
        url = parse_url(text)
    except ProductError as error:
        raise ValueError(str(error)) from None
    if url is None or url.get_backend_name() == 'sqlite':
        return None
    return url.set(drivername='postgresql').render_as_string(hide_password=False)


_TABLES = '''
CREATE TABLE IF NOT EXISTS apiphant_task_claims (
    product text NOT NULL, task text NOT NULL, slot bigint NOT NULL, host text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(), slot_end timestamptz NOT NULL,
    finished_at timestamptz, outcome text,
    PRIMARY KEY (product, task, slot));
CREATE TABLE IF NOT EXISTS apiphant_task_runs (
    product text NOT NULL, task text NOT NULL, slot bigint, host text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, outcome text,
    PRIMARY KEY (product, task))'''
# One advisory lock per task, named by the claims table's schema too, so
# products and schemas that share a database do not hold each other's.
_KEY = "hashtextextended(current_schema() || '.' || %(product)s || '.' || %(task)s, 0)"
_STARTED = """ON CONFLICT (product, task) DO UPDATE SET slot = excluded.slot, host = excluded.host,
        started_at = excluded.started_at, finished_at = NULL, outcome = NULL"""
# The claim and the task's last run in one statement: one commit, one WAL flush
# before the run starts.
_CLAIM = f'''WITH claim AS (
        INSERT INTO apiphant_task_claims (product, task, slot, host, slot_end)
        VALUES (%(product)s, %(task)s, %(slot)s, %(host)s, to_timestamp(%(slot_end)s))
        ON CONFLICT DO NOTHING RETURNING product, task, slot, host)
    INSERT INTO apiphant_task_runs (product, task, slot, host) SELECT * FROM claim
    {_STARTED} RETURNING task'''
_RUN = f'''INSERT INTO apiphant_task_runs (product, task, slot, host)
    VALUES (%(product)s, %(task)s, NULL, %(host)s) {_STARTED} RETURNING task'''
_FINISHED = f'''WITH claim AS (
        UPDATE apiphant_task_claims SET finished_at = now(), outcome = %(outcome)s
        WHERE product = %(product)s AND task = %(task)s AND slot = %(slot)s),
    run AS (
        UPDATE apiphant_task_runs SET finished_at = now(), outcome = %(outcome)s
        WHERE product = %(product)s AND task = %(task)s AND host = %(host)s
            AND slot IS NOT DISTINCT FROM %(slot)s)
    SELECT pg_advisory_unlock({_KEY})'''
# A claim is needed until its slot is over; an hour more covers clocks that disagree.
_PRUNE = '''DELETE FROM apiphant_task_claims
    WHERE product = %(product)s AND slot_end < now() - interval '1 hour' '''
_PRUNE_EVERY = 600
_DB_TIMEOUT = 5


class Claims:
    """Slots claimed in PostgreSQL, shared by every scheduler of the product.
    When the database cannot be reached, the slot is skipped and logged:
    a missed run is safer than a run twice."""

    shared = True

    def __init__(self, url, product, host):
        import psycopg  # here, after gevent's patching: only then does it wait cooperatively
        self._errors = psycopg.Error
        self._idle = psycopg.pq.TransactionStatus.IDLE
        self._connect = lambda: psycopg.connect(url, autocommit=True, connect_timeout=_DB_TIMEOUT)
        self.product, self.host = product, host
        self._lock = gevent.lock.Semaphore()  # one connection, one statement at a time
        self._connection = None
        self._pruned = time.monotonic()

    def prepare(self):
        """Connect and create the tables if they are missing; CannotStart if not."""
        try:
            with self._session() as connection, connection.transaction():
                # Two schedulers creating the same table at once can collide in the catalog.
                connection.execute('SELECT pg_advisory_xact_lock(hashtext(%s))', ('apiphant_task_claims',))
                connection.execute(_TABLES)
        except (self._errors, gevent.Timeout) as error:
            raise CannotStart(f'cannot use the database: {_one_line(error)}') from None

    def describe(self):
        info = self._connection.info
        return f'claiming slots in PostgreSQL {info.host}:{info.port}/{info.dbname} as {self.host}'

    @contextlib.contextmanager
    def _session(self):
        with self._lock, gevent.Timeout(_DB_TIMEOUT):
            if self._connection is None or self._connection.closed:
                self._connection = self._connect()
            try:
                yield self._connection
            except BaseException:
                # A statement cut short (a timeout) leaves the connection mid-protocol:
                # close it then, and its advisory locks go with it; not after an SQL error.
                if not self._usable(self._connection):
                    self._connection.close()
                raise

    def _usable(self, connection):
        return not connection.broken and connection.info.transaction_status == self._idle

    def claim(self, task, slot):
        """Whether this scheduler runs ``task``'s ``slot`` (None: a run out of
        schedule, ``--run``): it is not running elsewhere and the claim is ours."""
        params = {'product': self.product, 'task': task.name, 'slot': slot, 'host': self.host,
                  'slot_end': None if slot is None else slot_start(slot + 1, task.period)}
        try:
            with self._session() as connection:
                if not connection.execute(f'SELECT pg_try_advisory_lock({_KEY})', params).fetchone()[0]:
                    log.debug('Task %s: slot %s is not run here, a run goes on elsewhere', task.name, slot)
                    return False
                claimed = False
                try:
                    claimed = connection.execute(_RUN if slot is None else _CLAIM, params).fetchone() is not None
                finally:
                    if not claimed and self._usable(connection):
                        connection.execute(f'SELECT pg_advisory_unlock({_KEY})', params)
                if not claimed:
                    log.debug('Task %s: slot %s was claimed elsewhere', task.name, slot)
                return claimed
        except (self._errors, gevent.Timeout) as error:
            log.error('Task %s: slot %s skipped, it cannot be claimed: %s', task.name, slot, _one_line(error))
            return False

    def finish(self, task, slot, outcome):
        params = {'product': self.product, 'task': task.name, 'slot': slot, 'host': self.host,
                  'outcome': outcome}
        try:
            with self._session() as connection:
                connection.execute(_FINISHED, params)
                if time.monotonic() - self._pruned > _PRUNE_EVERY:
                    connection.execute(_PRUNE, params)
                    self._pruned = time.monotonic()
        except (self._errors, gevent.Timeout) as error:
            log.error('Task %s: the outcome of slot %s is not recorded: %s', task.name, slot, _one_line(error))

    def close(self):
        if self._connection is not None:
            self._connection.close()

    def runs(self):
        """``{task: (started_at, outcome, host)}`` of each task's last run;
        the outcome is None while it runs (or when its host died running it)."""
        try:
            with self._session() as connection:
                return {task: rest for task, *rest in connection.execute(
                    'SELECT task, started_at, outcome, host FROM apiphant_task_runs '
                    'WHERE product = %s', (self.product,))}
        except (self._errors, gevent.Timeout) as error:
            raise CannotStart(f'cannot read the last runs: {_one_line(error)}') from None


def _one_line(error):
    text = ' '.join(str(error).split()) or type(error).__name__
    return text if isinstance(error, Exception) else f'{type(error).__name__}: {text}'
