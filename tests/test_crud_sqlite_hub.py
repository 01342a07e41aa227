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
