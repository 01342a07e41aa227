"""Generated CRUD when things go wrong: a write lock held by another process,
writers that queue, a pool or a lock waited on too long, a database that is
down or drops its connections, a server killed with SIGKILL.

Checks are structural where they can be (server-side timestamps inside the
lock's window); the few bounds on durations are generous."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import PRODUCTS
from test_crud import BACKENDS, PRODUCT, ok, post, store, when

UNAVAILABLE = {'error': '503 Service Unavailable'}

# Holds SQLite's write lock from another process: prints when it has it,
# and when it has let it go.
HOLDER = '''
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute('BEGIN IMMEDIATE')
print(time.time(), flush=True)
time.sleep(float(sys.argv[2]))
connection.execute('COMMIT')
print(time.time(), flush=True)
'''


def timed(server, path, data=None):
    response = post(server, path, data)
    return response, time.time()


def holding(server):
    """Wait until a custom/hold sent before holds its transaction."""
    deadline = time.monotonic() + 10
    while not ok(server, 'custom/holding')['holding']:
        assert time.monotonic() < deadline, 'custom/hold never started'
        time.sleep(0.01)


def assert_unavailable(response):
    assert response.status_code == 503, response.text
    assert response.json() == UNAVAILABLE
    assert response.headers['Retry-After'] == '1'
    assert response.headers['Content-Type'] == 'application/json'


@pytest.fixture
def serve(apiphant_serve):
    """``serve(product, url, **env)``: a server of ``product`` on the database at
    ``url``, stopped after the test."""
    def start(product, url, **env):
        return apiphant_serve(product, env={'APIPHANT_DATABASE_URL': url, **env})
    return start


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    with store(request.param, tmp_path) as found:
        yield found


def test_a_lock_held_by_another_process_freezes_no_request(serve, tmp_path):
    path = tmp_path / 'locked.sqlite3'
    with ThreadPoolExecutor(2) as pool:  # two processes making the same tables at once
        patient, hasty = pool.map(lambda wait: serve(PRODUCT, f'sqlite:///{path}', APIPHANT_DATABASE_WAIT=wait),
                                  ('5', '0.5'))
    existing = ok(patient, 'tasks/create', {'title': 'before'})
    with subprocess.Popen([sys.executable, '-c', HOLDER, str(path), '2'],
                          stdout=subprocess.PIPE, text=True) as holder:
        locked_at = float(holder.stdout.readline())
        with ThreadPoolExecutor(12) as pool:
            creates = [pool.submit(timed, server, 'tasks/create', {'title': f'during {i}'})
                       for i in range(5) for server in (patient, hasty)]
            read = pool.submit(timed, patient, 'tasks/read', {'id': existing['id']})
            clocks = []
            for _ in range(100):
                started = time.time()
                answer = ok(patient if len(clocks) % 2 else hasty, 'custom/clock')
                clocks.append((started, answer['time'], time.time()))
            released_at = float(holder.stdout.readline())
            results = [future.result() for future in creates]
            read_response, read_at = read.result()
    # Every echo ran on the servers while the lock was held, each promptly,
    # while the creates that arrived before them still waited for the lock.
    assert all(locked_at < server_time < released_at for _, server_time, _ in clocks)
    assert max(end - start for start, _, end in clocks) < 1.0  # generous: the structure above is the check
    # Reads do not wait for writers (WAL).
    assert read_response.status_code == 200 and read_at < released_at
    patient_results, hasty_results = results[0::2], results[1::2]
    for response, finished in patient_results:
        assert response.status_code == 200, response.text
        assert when(response.json()['created_at']).timestamp() < clocks[-1][1] < released_at < finished
    for response, finished in hasty_results:  # waits 0.5 s, the lock lasts 2 s
        assert_unavailable(response)
    assert hasty.wait_for_output('is unavailable: database is locked')
    ids = [response.json()['id'] for response, _ in patient_results]
    assert [ok(patient, 'tasks/read', {'id': i})['title'] for i in ids] == [f'during {i}' for i in range(5)]
    assert ok(hasty, 'tasks/list', {'total': True})['meta']['total_objects'] == 6


def test_slow_queries_freeze_no_other_request(database, serve):
    server = serve(PRODUCT, database.url)
    with ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(ok, server, 'custom/slow', {'seconds': 0.5, 'count': 400_000}) for _ in range(2)]
        clocks = []
        while not all(future.done() for future in slow):
            clocks.append(ok(server, 'custom/clock')['time'])
        first, second = (future.result() for future in slow)
    # Both ran at once (SQLite in two threads, psycopg waiting cooperatively),
    # and other requests were answered meanwhile.
    assert first['started'] < second['ended'] and second['started'] < first['ended']
    during = [t for t in clocks if max(first['started'], second['started']) < t < min(first['ended'], second['ended'])]
    assert len(during) >= 3, (first, second, clocks)


def test_writers_queue_behind_a_transaction_that_yields(database, serve):
    server = serve(PRODUCT, database.url)
    with ThreadPoolExecutor(41) as pool:
        hold = pool.submit(ok, server, 'custom/hold', {'seconds': 0.8})
        holding(server)
        creates = [pool.submit(timed, server, 'tasks/create', {'title': f'writer {i}'}) for i in range(40)]
        held = hold.result()
        results = [future.result() for future in creates]
    assert all(response.status_code == 200 for response, _ in results), [r.text for r, _ in results]
    ids = {response.json()['id'] for response, _ in results}
    assert len(ids) == 40
    assert ok(server, 'tasks/list', {'where': {'title': {'$like': 'writer %'}}, 'total': True})['meta']['total_objects'] == 40
    if database.backend == 'sqlite':  # one writer at a time: the others waited for the transaction
        assert all(finished > held['ended'] for _, finished in results)


def test_waiting_too_long_is_503_with_retry_after(database, serve):
    server = serve(PRODUCT, database.url, APIPHANT_DATABASE_WAIT='0.3', APIPHANT_DATABASE_POOL_SIZE='1')
    existing = ok(server, 'tasks/create', {'title': 'there'})
    with ThreadPoolExecutor(2) as pool:
        hold = pool.submit(ok, server, 'custom/hold', {'seconds': 1.2})
        holding(server)
        create = post(server, 'tasks/create', {'title': 'too late'})
        listed = post(server, 'tasks/list', {'where': {'id': existing['id']}})  # the one connection is held
        read = post(server, 'tasks/read', {'id': existing['id']})
        clock = ok(server, 'custom/clock')['time']
        held = hold.result()
    assert clock < held['ended']
    assert_unavailable(create)
    assert_unavailable(listed)
    if database.backend == 'sqlite':  # a read by key takes no connection of the pool
        assert read.status_code == 200 and read.json()['title'] == 'there'
    else:
        assert_unavailable(read)
    assert ok(server, 'tasks/create', {'title': 'in time'})['title'] == 'in time'
    assert ok(server, 'tasks/list', {'where': {'title': 'too late'}, 'total': True})['meta']['total_objects'] == 0


def test_a_database_that_is_down_is_503_never_500(serve):
    server = serve(PRODUCT, 'postgresql://postgres@127.0.0.1:1/test', APIPHANT_DATABASE_WAIT='1')
    assert server.wait_for_output('unavailable at start-up')
    for path, data in [('tasks/create', {'title': 'x'}), ('tasks/read', {'id': 1}), ('tasks/list', {}),
                       ('tasks/update', {'id': 1}), ('tasks/delete', {'id': 1}), ('items/stats', {'fields': ['count']})]:
        assert_unavailable(post(server, path, data))
    field_error = post(server, 'tasks/create', {'title': 5})  # checked before the database is needed
    assert field_error.status_code == 400
    assert ok(server, 'custom/clock')['time']
    assert 'Traceback' not in server.output


@pytest.mark.parametrize('path, data', [('tasks/list', {}), ('tasks/read', {'id': 1}),
                                        ('tasks/create', {'title': 'after'})])
def test_connections_killed_under_the_server_cost_one_503_at_most(serve, tmp_path, path, data):
    with store('postgresql', tmp_path) as database:
        name = f'crud_{uuid.uuid4().hex[:8]}'
        server = serve(PRODUCT, f'{database.url}&application_name={name}')
        with ThreadPoolExecutor(4) as pool:  # open several pooled connections
            list(pool.map(lambda i: ok(server, 'tasks/create', {'title': f'x{i}'}), range(8)))
        killed = database.query(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                f"WHERE application_name = '{name}'")[0][0]
        assert killed >= 1
        statuses = [post(server, path, data).status_code for _ in range(4)]
        assert statuses[0] in (200, 503) and set(statuses[1:]) == {200}
        if statuses[0] == 503:
            assert server.wait_for_output('is unavailable: .*terminat')
        assert 'Traceback' not in server.output


def test_every_acknowledged_create_survives_kill_9(database, serve):
    server = serve(PRODUCT, database.url)
    acknowledged, stop = [], threading.Event()

    def write(worker):
        session = requests.Session()
        number = 0
        while not stop.is_set():
            number += 1
            title = f'{worker}-{number}'
            try:
                response = session.post(f'{server.url}/api/v0/tasks/create', json={'title': title}, timeout=5)
            except requests.RequestException:
                return
            if response.status_code == 200:
                acknowledged.append((response.json()['id'], title))

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acknowledged) >= 8
    again = serve(PRODUCT, database.url)
    found = {}
    for start in range(0, len(acknowledged), 100):
        keys = [key for key, _ in acknowledged[start:start + 100]]
        rows = ok(again, 'tasks/list', {'where': {'id': {'$in': keys}}, 'page_size': 100})['data']
        found.update((row['id'], row['title']) for row in rows)
    assert found == dict(acknowledged)


def test_the_default_database_is_a_file_beside_the_product(serve, tmp_path):
    shutil.copytree(PRODUCT, tmp_path / 'crudproduct', ignore=shutil.ignore_patterns('__pycache__'))
    server = serve(tmp_path / 'crudproduct', 'none')
    row = ok(server, 'tasks/create', {'title': 'where am I'})
    server.stop()
    import sqlite3
    connection = sqlite3.connect(tmp_path / 'crudproduct.sqlite3')
    try:
        assert connection.execute('PRAGMA journal_mode').fetchone() == ('wal',)
        assert connection.execute('SELECT title FROM tasks WHERE id = ?', (row['id'],)).fetchone() == ('where am I',)
    finally:
        connection.close()


def test_a_bad_database_url_stops_start_up():
    completed = subprocess.run(
        [sys.executable, '-m', 'apiphant', str(PRODUCT), '127.0.0.1:0'],
        env={**os.environ, 'APIPHANT_DATABASE_URL': 'sqlite:////nonexistent/dir/x.sqlite3'},
        capture_output=True, text=True, timeout=30)
    assert completed.returncode == 1
    assert 'apiphant: no directory /nonexistent/dir for the SQLite database' in completed.stderr
    assert 'Traceback' not in completed.stderr


@pytest.mark.parametrize('url, said', [
    ('postgresql://postgres@127.0.0.1:5432/apiphant_no_such_db', 'database "apiphant_no_such_db" does not exist'),
    ('postgresql://apiphant_no_such_role@127.0.0.1:5432/test', 'role "apiphant_no_such_role" does not exist'),
])
def test_a_database_that_refuses_the_product_stops_start_up_in_one_line(url, said, tmp_path):
    with store('postgresql', tmp_path):  # skips (or fails) when PostgreSQL is down
        pass
    completed = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCT), '127.0.0.1:0', '--database-url', url],
                               env={**os.environ, 'APIPHANT_DATABASE_URL': 'none'},
                               capture_output=True, text=True, timeout=30)
    assert completed.returncode == 1
    last = completed.stderr.splitlines()[-1]
    assert last.startswith('apiphant: cannot use Database(') and said in last, completed.stderr
    assert 'Traceback' not in completed.stderr


def test_missing_psycopg_is_one_line_naming_the_extra(monkeypatch):
    import importlib.metadata

    from apiphant.crud import storage
    from apiphant.product import ProductError

    def version(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, 'version', version)
    with pytest.raises(ProductError) as raised:
        storage.require_psycopg()
    assert str(raised.value) == "PostgreSQL needs psycopg: pip install 'apiphant[postgresql]'"


def test_the_command_line_names_the_database(apiphant_serve, tmp_path):
    path = tmp_path / 'flagged.sqlite3'
    server = apiphant_serve(PRODUCT, '--database-url', f'sqlite:///{path}', '--database-wait', '0.3',
                            env={'APIPHANT_DATABASE_URL': 'none'})
    row = ok(server, 'tasks/create', {'title': 'flagged'})
    server.stop()
    import sqlite3
    connection = sqlite3.connect(path)
    try:
        assert connection.execute('SELECT title FROM tasks WHERE id = ?', (row['id'],)).fetchone() == ('flagged',)
    finally:
        connection.close()
    assert not (PRODUCTS / 'crudproduct.sqlite3').exists()


# Deadlines (issue 11): no statement holds a connection for long, and a
# database that does not answer is a prompt 503.

def test_a_statement_past_the_deadline_is_503_and_frees_its_connection(database, serve):
    server = serve(PRODUCT, database.url, APIPHANT_DATABASE_TIMEOUT='0.5', APIPHANT_DATABASE_POOL_SIZE='1')
    forever = {'seconds': 60, 'count': 10 ** 10}  # an hour of counting in SQLite
    assert_unavailable(post(server, 'custom/slow', forever))
    assert server.wait_for_output('a statement ran out of time: .*(interrupted|statement timeout)')
    assert ok(server, 'tasks/create', {'title': 'after'})['title'] == 'after'  # the one connection is back
    assert ok(server, 'custom/slow', {'seconds': 0.7, 'count': 1_000_000, 'unbounded': True})['ended']
    assert_unavailable(post(server, 'custom/slow', forever))  # the session's timeout again
    assert 'Traceback' not in server.output


def test_a_row_locked_from_outside_is_503_after_the_wait(serve, tmp_path):
    import psycopg
    with store('postgresql', tmp_path) as database:
        server = serve(PRODUCT, database.url, APIPHANT_DATABASE_WAIT='0.5')
        row = ok(server, 'tasks/create', {'title': 'locked outside'})
        with psycopg.connect(database.url) as outside:
            outside.execute('SELECT * FROM tasks WHERE id = %s FOR UPDATE', (row['id'],))
            assert_unavailable(post(server, 'tasks/update', {'id': row['id'], 'title': 'mine'}))
            assert ok(server, 'tasks/read', {'id': row['id']})['version'] == 1  # reads do not wait
        assert server.wait_for_output('a statement ran out of time: .*lock timeout')
        assert ok(server, 'tasks/update', {'id': row['id'], 'title': 'mine'})['version'] == 2


def test_a_blackholed_database_is_503_at_the_connect_timeout(serve):
    """A port that accepts nothing: connections wait for an answer that never
    comes. The pool wait is 30 s; psycopg alone would wait as long."""
    with socket.socket() as blackhole:
        blackhole.bind(('127.0.0.1', 0))
        blackhole.listen(0)
        url = f'postgresql://postgres@127.0.0.1:{blackhole.getsockname()[1]}/test'
        server = serve(PRODUCT, url, APIPHANT_DATABASE_WAIT='30')
        assert server.wait_for_output('unavailable at start-up')

        def attempt(path):
            return requests.post(f'{server.url}/api/v0/{path}', json={}, timeout=10)
        with ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(attempt, ['tasks/list', 'items/list'] * 5))
        for response in responses:
            assert_unavailable(response)
        assert server.wait_for_output('no connection within 1.0 s')
        assert 'Traceback' not in server.output
