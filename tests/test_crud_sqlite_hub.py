"""SQLite statements tried on the hub's thread (apiphant.crud.sqlite.Hub):
quick ones answer there, long ones and those that would wait for a lock are
handed back to run in a thread; on real files."""
import sqlite3
import subprocess
import sys

import gevent
import pytest

from apiphant.crud import sqlite


def run(function, args):
    return function(*args)


@pytest.fixture
def path(tmp_path):
    path = tmp_path / 'hub.sqlite3'
    with sqlite3.connect(path) as connection:
        connection.execute('PRAGMA journal_mode = WAL')
        connection.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, n INT)')
        connection.executemany('INSERT INTO t (n) VALUES (?)', [(i % 97,) for i in range(20000)])
    return path


def test_a_quick_statement_answers_on_the_hub(path):
    hub = sqlite.Hub(str(path), run)
    assert hub.here()
    rows, description, _, _ = hub.execute('SELECT id, n FROM t WHERE id = ?', (5,))
    assert list(rows) == [(5, 4)] and [column[0] for column in description] == ['id', 'n']


def test_a_long_statement_goes_to_a_thread(path):
    hub = sqlite.Hub(str(path), run)
    assert hub.execute('SELECT n FROM t ORDER BY n DESC, id LIMIT 5', ()) is None  # sorts 20,000 rows
    assert hub.spent
    assert hub.execute('SELECT count(*) FROM t WHERE id < 10', ()) is not None  # the next one is measured anew


def test_another_thread_is_not_the_hub(path):
    hub = sqlite.Hub(str(path), run)
    pool = gevent.get_hub().threadpool
    assert pool.apply(hub.here) is False


def test_a_statement_that_would_wait_for_a_lock_goes_to_a_thread(path):
    hub = sqlite.Hub(str(path), run)
    hub.connection()
    holder = subprocess.Popen([sys.executable, '-c', f'''
import sqlite3, sys, time
connection = sqlite3.connect({str(path)!r}, isolation_level=None)
connection.execute('BEGIN IMMEDIATE')
print('held', flush=True)
sys.stdin.readline()
connection.execute('ROLLBACK')
'''], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        assert hub.execute('UPDATE t SET n = 0 WHERE id = 1', ()) is None  # busy_timeout 0: no wait here
        assert list(hub.execute('SELECT n FROM t WHERE id = 2', ())[0]) == [(1,)]  # WAL: reads do not wait
    finally:
        holder.communicate('\n', timeout=10)


def test_concurrent_creates_each_get_their_row_or_their_violation(tmp_path):
    """16 creates at once (committed together on the hub), 9 of them taken
    values; and one from another thread, committed alone."""
    import sqlalchemy as sa

    from apiphant.crud import storage
    database = storage.Database(f'sqlite:///{tmp_path}/group.sqlite3')
    table = sa.Table('t', sa.MetaData(), sa.Column('id', sa.Integer, primary_key=True),
                     sa.Column('n', sa.Integer, unique=True))
    with database.transaction() as connection:
        table.create(connection)
    insert = sa.insert(table).returning(*table.c)
    try:
        assert database.insert(insert, {'n': 0}) == (1, 0)
        creates = [gevent.spawn(database.insert, insert, {'n': n % 8}) for n in range(1, 17)]
        gevent.joinall(creates)
        stored = [create.value for create in creates if create.successful()]
        refused = [create.exception for create in creates if not create.successful()]
        assert sorted(n for _, n in stored) == list(range(1, 8))  # a refused one fails alone, not its group
        assert len(refused) == 9 and all(isinstance(error, sa.exc.IntegrityError) for error in refused)
        assert gevent.get_hub().threadpool.apply(database.insert, (insert, {'n': 100}))[1] == 100
        with database.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 9
    finally:
        database.close()
