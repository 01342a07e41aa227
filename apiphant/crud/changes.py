"""The change log of the tables that can be watched: every write to one of
them records the change, in the same transaction, in ``apiphant_changes``
(one per database), numbered by ``seq``.

Rules, each pinned by a test:

- A change is recorded by the write transaction itself, just before its
  COMMIT: a rolled-back write (a savepoint's included) records nothing, and
  a committed one is never missed.
- ``seq`` grows in commit order, with no change committed later under a
  smaller number: in SQLite one writer holds the database; in PostgreSQL
  the recording takes a transaction-level advisory lock, the last lock the
  transaction takes (so it cannot deadlock), held until its COMMIT. A
  reader that has seen ``seq`` N therefore never sees a new change at or
  below N: "everything after N" is a complete answer. The price is that
  the COMMITs of writes to watched tables take turns.
- In PostgreSQL the recording also says ``NOTIFY apiphant_changes``, which
  PostgreSQL delivers at the COMMIT to every process listening, on every
  host; SQLite's readers poll (see ``watch``).
- Each change holds the whole row before and after (JSON; None for a
  create's before and a delete's after), hidden columns too: a watcher's
  rules may name them, and an event sent from the log is the same after a
  reconnection as it was live.
- ``prune`` deletes the changes older than the retention, except the
  newest one, so that the log's first and last numbers tell what it still
  holds.
"""
import time

import sqlalchemy as sa

from apiphant.codec import encode
from apiphant.crud import storage

__all__ = ['LOG', 'CHANNEL', 'SQLITE_RECORD', 'record', 'created', 'begin', 'mark', 'undo', 'flush', 'forget',
           'prepare', 'since', 'missed', 'bounds', 'prune']

CHANNEL = 'apiphant_changes'
LOG = sa.Table(
    'apiphant_changes', sa.MetaData(),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True),
    sa.Column('tbl', sa.Text, nullable=False),
    sa.Column('op', sa.Text, nullable=False),  # create, update, delete
    sa.Column('row_key', sa.BigInteger, nullable=False),
    sa.Column('at', sa.Float, nullable=False),  # Unix seconds, for the retention
    sa.Column('before', sa.Text),
    sa.Column('after', sa.Text),
    sqlite_autoincrement=True)  # a number is never given twice, even after the newest is deleted
_PENDING = 'apiphant_changes'  # the key of a transaction's changes in connection.info
# The row of a create written in SQLite's group commit (storage.insert), outside SQLAlchemy.
SQLITE_RECORD = 'INSERT INTO apiphant_changes (tbl, op, row_key, at, before, after) VALUES (?, ?, ?, ?, NULL, ?)'

_insert = LOG.insert()
# PostgreSQL: the lock, then the row (its seq drawn after the lock is had), and the notice, in one statement.
_RECORD_PG = sa.text(
    'WITH turn AS (SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || :channel, 0))), '
    'notice AS (SELECT pg_notify(:channel, \'\')) '
    'INSERT INTO apiphant_changes (tbl, op, row_key, at, before, after) '
    'SELECT :tbl, :op, :row_key, :at, :before, :after FROM turn, notice')
_CHANGE = (LOG.c.seq, LOG.c.tbl, LOG.c.op, LOG.c.at, LOG.c.before, LOG.c.after)
_first = sa.select(sa.func.min(LOG.c.seq).label('first')).subquery()
_bounds = sa.select(sa.func.min(LOG.c.seq), sa.func.max(LOG.c.seq))
_prepared = {}  # Database: storage.Once


def record(connection, table, op, key, before, after):
    """Note a change of a row of ``table`` (a name) on ``connection``, in a
    ``transaction()`` block: written by ``flush`` when the block commits.
    ``before`` and ``after`` are the whole rows (mappings), or None."""
    connection.info[_PENDING].append((table, op, key, None if before is None else encode(dict(before)).decode(),
                                      None if after is None else encode(dict(after)).decode()))


def created(table, names):
    """``record(row)`` for ``storage.insert``: the parameters of
    ``SQLITE_RECORD`` for a create of ``table`` whose stored row is the
    tuple ``row`` of the columns ``names``."""
    def record(row):
        after = dict(zip(names, row))
        return table, 'create', after['id'], time.time(), encode(after).decode()
    return record


def begin(connection):
    """A transaction begins on ``connection``: no change noted yet."""
    connection.info[_PENDING] = []


def mark(connection):
    """Where the changes noted so far end (a savepoint begins)."""
    return len(connection.info[_PENDING])


def undo(connection, mark):
    """Forget the changes noted after ``mark`` (the savepoint rolled back)."""
    del connection.info[_PENDING][mark:]


def flush(connection):
    """Write the changes noted in the transaction on ``connection``, just
    before its COMMIT; True when there were any."""
    pending = connection.info.pop(_PENDING, None)
    if not pending:
        return False
    at = time.time()
    rows = [{'tbl': table, 'op': op, 'row_key': key, 'at': at, 'before': before, 'after': after}
            for table, op, key, before, after in pending]
    if connection.dialect.name == 'postgresql':
        for row in rows:
            connection.execute(_RECORD_PG, {**row, 'channel': CHANNEL})
    else:
        connection.execute(_insert, rows)
    return True


def forget(connection):
    """The transaction on ``connection`` ended without a flush (rolled back)."""
    connection.info.pop(_PENDING, None)


def prepare(database):
    """Create the change log in ``database`` when it is missing, once per process."""
    once = _prepared.get(database)
    if once is None:
        once = _prepared[database] = storage.Once(lambda: _create(database))
    once(database.wait)


def _create(database):
    with database.transaction(timeout=None) as connection:
        if connection.dialect.name == 'postgresql':  # processes starting together agree
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended("
                                       "current_schema() || '.apiphant.crud.apiphant_changes', 0))"))
        LOG.create(connection, checkfirst=True)


def since(database, seq, limit=1000):
    """Up to ``limit`` changes after ``seq``, in order: ``(seq, table, op,
    at, before, after)`` (``before`` and ``after`` JSON text)."""
    with database.connect() as connection:
        return storage.rows(connection, sa.select(*_CHANGE).where(LOG.c.seq > seq).order_by(LOG.c.seq).limit(limit))


def missed(database, table, seq, upto):
    """``(first, changes)``: the first number the log still holds (None:
    it is empty) and the changes of ``table`` after ``seq`` up to ``upto``,
    as ``since`` gives them, read in one statement."""
    # The first number, left-joined to the changes: one snapshot, and a row even when no change is found.
    statement = sa.select(_first.c.first, *_CHANGE).select_from(_first.outerjoin(
        LOG, sa.and_(LOG.c.tbl == table, LOG.c.seq > seq, LOG.c.seq <= upto))).order_by(LOG.c.seq)
    with database.connect() as connection:
        rows = storage.rows(connection, statement)
    return rows[0][0], [row[1:] for row in rows if row[1] is not None]


def bounds(database):
    """``(first, last)`` numbers of the log, ``(None, None)`` when it is empty."""
    with database.connect() as connection:
        return tuple(connection.execute(_bounds).one())


def prune(database, retention):
    """Delete the changes older than ``retention`` seconds but the newest;
    how many were deleted."""
    with database.transaction() as connection:
        newest = connection.execute(sa.select(sa.func.max(LOG.c.seq))).scalar()
        if newest is None:
            return 0
        return connection.execute(LOG.delete().where(LOG.c.at < time.time() - retention, LOG.c.seq < newest)).rowcount
