"""Live tables (issue 15): watch streams served by a real server, on SQLite
and PostgreSQL, with their bad cases."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from apiphant.auth import tokens
from conftest import skip_or_fail
from livewatch import open_watch

PRODUCT = Path(__file__).parent / 'products' / 'liveproduct'
POSTGRESQL = 'postgresql://postgres@127.0.0.1:5432/test'


def call(server, path, body=None, token=None):
    headers = {'Authorization': f'Bearer {token}'} if token else {}
    return requests.post(f'{server.url}/api/{path}', json=body or {}, headers=headers, timeout=10)


def ok(server, path, body=None, token=None):
    answer = call(server, path, body, token)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def live(apiphant_serve):
    return apiphant_serve(PRODUCT, '--watch-heartbeat', '60')


def test_each_change_reaches_the_watcher_as_its_view_sees_it(live):
    watch = open_watch(live, where={'done': False})
    assert watch.status == 200
    assert watch.headers['content-type'] == 'text/event-stream'
    assert watch.headers['cache-control'] == 'no-store'
    assert watch.headers['x-accel-buffering'] == 'no'
    ready = watch.next()
    assert ready['event'] == 'ready'
    task = ok(live, 'v0/tasks/create', {'title': 'a', 'due': '2026-11-29T10:00:00Z'})
    created = watch.next()
    assert created['event'] == 'create' and created['data'] == task  # the row as read answers it
    assert 'secret' not in created['data']  # a hidden column is not sent
    assert created['id'] > ready['id']
    updated = ok(live, 'v0/tasks/update', {'id': task['id'], 'points': 3})
    assert watch.next() == {'id': watch.last_id, 'event': 'update', 'data': updated}
    ok(live, 'v0/tasks/update', {'id': task['id'], 'done': True})  # out of the where: a delete for it
    assert watch.next() == {'id': watch.last_id, 'event': 'delete', 'data': {'id': task['id']}}
    other = ok(live, 'v0/tasks/create', {'title': 'b', 'done': True})  # never in its view
    ok(live, 'v0/tasks/update', {'id': other['id'], 'title': 'b2'})
    ok(live, 'v0/tasks/update', {'id': other['id'], 'done': False})  # into the where: a create for it
    came = watch.next()
    assert came['event'] == 'create' and came['data']['title'] == 'b2'
    ok(live, 'v0/tasks/delete', {'id': other['id']})
    assert watch.next()['event'] == 'delete'
    watch.quiet(0.3)
    watch.close()


def test_get_with_a_where_in_the_query_string_serves_event_source(live):
    where = quote(json.dumps({'title': {'$like': 'x%'}}))
    watch = open_watch(live, method='GET', query=f'where={where}')
    assert watch.status == 200
    watch.next()  # ready
    ok(live, 'v0/tasks/create', {'title': 'y'})
    made = ok(live, 'v0/tasks/create', {'title': 'x1'})
    assert watch.next()['data'] == made
    watch.close()


def test_rolled_back_writes_send_nothing_and_savepoints_undo_their_own(live):
    watch = open_watch(live)
    watch.next()
    assert call(live, 'v0/tasks/failed_batch').status_code == 400
    kept = ok(live, 'v0/tasks/partial_batch', {'title': 'kept'})
    event = watch.next()
    assert event['event'] == 'create' and event['data'] == kept
    watch.quiet(0.3)
    watch.close()


def test_a_client_that_comes_back_with_last_event_id_misses_nothing_and_gets_nothing_twice(live):
    watch = open_watch(live)
    watch.next()
    first = ok(live, 'v0/tasks/create', {'title': 'first'})
    seen = watch.next()
    watch.close()
    missed = [ok(live, 'v0/tasks/create', {'title': f'missed {n}'}) for n in range(3)]
    ok(live, 'v0/tasks/update', {'id': first['id'], 'done': True})
    ok(live, 'v0/tasks/delete', {'id': missed[1]['id']})
    back = open_watch(live, last_id=seen['id'])
    replayed = back.events(6)
    assert [e['event'] for e in replayed] == ['create', 'create', 'create', 'update', 'delete', 'ready']
    assert [e['data'].get('title') for e in replayed[:3]] == ['missed 0', 'missed 1', 'missed 2']
    assert replayed[4]['data'] == {'id': missed[1]['id']}
    ids = [e['id'] for e in replayed]
    assert ids == sorted(ids) and len(set(ids[:5])) == 5 and ids[0] > seen['id']
    after = ok(live, 'v0/tasks/create', {'title': 'after'})
    assert back.next()['data'] == after  # then live, nothing twice
    back.quiet(0.3)
    back.close()
    again = open_watch(live, last_id=replayed[-1]['id'])  # from ready's id: only what came after it
    assert [e['event'] for e in again.events(2)] == ['create', 'ready']
    again.close()


def test_beyond_the_retention_a_client_is_told_to_list_again(apiphant_serve):
    server = apiphant_serve(PRODUCT, '--watch-retention', '1', '--watch-heartbeat', '60')
    watch = open_watch(server)
    last = watch.next()['id']
    watch.close()
    ok(server, 'v0/tasks/create', {'title': 'old 1'})
    ok(server, 'v0/tasks/create', {'title': 'old 2'})
    time.sleep(1.6)  # older than the retention, and pruned (every half retention)
    ok(server, 'v0/tasks/create', {'title': 'new'})
    time.sleep(0.8)
    back = open_watch(server, last_id=last)
    events = back.events(2)
    assert [e['event'] for e in events] == ['reset', 'ready']
    assert events[0]['id'] == events[1]['id'] and events[0]['id'] > last
    back.close()
    future = open_watch(server, last_id=10 ** 12)  # an id this log never gave
    assert future.next()['event'] == 'reset'
    future.close()


def test_heartbeats_keep_a_quiet_stream_alive_and_carry_its_id(apiphant_serve):
    server = apiphant_serve(PRODUCT, '--watch-heartbeat', '0.2')
    ok(server, 'v0/tasks/create', {'title': 'before'})
    watch = open_watch(server, 'v0/notes', token=server.token(1))  # nothing of notes happens
    ready = watch.next()
    ok(server, 'v0/tasks/create', {'title': 'not a note'})
    deadline = time.monotonic() + 5
    while watch.last_id == ready['id'] and time.monotonic() < deadline:
        with pytest.raises(TimeoutError):
            watch.next(0.3)
    assert watch.comments >= 1
    assert watch.last_id > ready['id']  # moved past a change that is not its concern
    watch.close()


def test_rules_filter_events_and_a_row_that_leaves_them_is_a_delete(live):
    """API1 (BOLA) on streams: another caller's row never reaches a watcher."""
    alice, bob = live.token(1), live.token(2)
    watch = open_watch(live, 'v0/notes', token=alice)
    watch.next()
    ok(live, 'v0/notes/create', {'text': 'bob private'}, bob)
    shared = ok(live, 'v0/notes/create', {'text': 'bob shared', 'shared': True}, bob)
    event = watch.next()
    assert event['event'] == 'create' and event['data']['id'] == shared['id']
    ok(live, 'v0/notes/update', {'id': shared['id'], 'shared': False}, bob)
    assert watch.next() == {'id': watch.last_id, 'event': 'delete', 'data': {'id': shared['id']}}
    own = ok(live, 'v0/notes/create', {'text': 'mine'}, alice)
    assert watch.next()['data'] == own
    watch.quiet(0.3)
    watch.close()
    # A resume replays through the same rules.
    back = open_watch(live, 'v0/notes', token=alice, last_id=0)
    assert [e['data'].get('text') for e in back.events(4)] == ['bob shared', None, 'mine', None]
    back.close()


def test_a_watch_needs_the_access_of_the_table(live):
    """API2/API5: no token, a bad token: 401; the where may not name a hidden column."""
    anonymous = open_watch(live, 'v0/notes')
    assert anonymous.status == 401 and 'bearer' in anonymous.headers['www-authenticate'].lower()
    forged = open_watch(live, 'v0/notes', token='e30.e30.e30')
    assert forged.status == 401
    hidden = open_watch(live, where={'secret': 'x'})
    assert hidden.status == 400 and hidden.body['error']['field'] == 'where'


def test_bad_watch_requests_are_clear_errors_and_the_server_goes_on(live):
    cases = [
        (dict(method='GET', query='where=%7Bnot%20json'), 400, 'where'),
        (dict(method='GET', query='page=2'), 400, 'page'),
        (dict(method='GET', query='where=1&where=2'), 400, 'where'),
        (dict(where={'nope': 1}), 400, 'where'),
        (dict(where={'done': {'$lt': True}}), 400, 'where'),
        (dict(where='done'), 400, 'where'),
        (dict(last_id='abc'), 400, 'Last-Event-ID'),
        (dict(last_id='-1'), 400, 'Last-Event-ID'),
        (dict(last_id='9' * 30), 400, 'Last-Event-ID'),
        (dict(headers=['Last-Event-ID: \xb2']), 400, 'Last-Event-ID'),  # a digit to Python, not a number
    ]
    for options, status, field in cases:
        answer = open_watch(live, **options)
        assert answer.status == status, (options, answer.body)
        assert answer.body['error']['field'] == field, (options, answer.body)
    put = open_watch(live, method='PUT')
    assert put.status == 405 and put.headers['allow'] == 'GET, POST'
    assert open_watch(live, 'v0/plain').status == 404  # a table that did not opt in
    unknown = requests.post(f'{live.url}/api/v0/tasks/watch', data=b'{"where": {}, "page": 1}',
                            headers={'Content-Type': 'application/json'}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()['error']['field'] == 'page'
    assert ok(live, 'v0/tasks/list')['data'] == []


def test_limits_on_watchers_per_client_and_per_process(apiphant_serve):
    """API4: streams are a resource; past the limits, 429 and 503 with Retry-After."""
    server = apiphant_serve(PRODUCT, '--max-watchers-per-client', '2', '--max-watchers', '3',
                            '--watch-heartbeat', '60')
    first, second = open_watch(server), open_watch(server)
    third = open_watch(server)
    assert third.status == 429 and third.headers['retry-after']
    first.close()
    time.sleep(0.2)  # the server sees the close
    again = open_watch(server)
    assert again.status == 200
    trusted = apiphant_serve(PRODUCT, '--max-watchers', '2', '--watch-heartbeat', '60')
    streams = [open_watch(trusted), open_watch(trusted)]
    refused = open_watch(trusted)
    assert refused.status == 503 and refused.headers['retry-after']
    ok(trusted, 'v0/tasks/create', {'title': 'counted'})
    for stream in streams:
        assert stream.next()['event'] == 'ready' and stream.next()['event'] == 'create'
    shown = requests.get(f'{trusted.url}/metrics', timeout=10).text
    assert 'apiphant_watchers_open 2' in shown
    assert 'apiphant_watchers_refused_total{status="503"} 1' in shown
    assert 'apiphant_watch_events_total 2' in shown
    assert 'apiphant_watchers_refused_total{status="429"} 1' in requests.get(f'{server.url}/metrics', timeout=10).text
    for stream in [second, again, *streams]:
        stream.close()


def test_a_slow_reader_is_cut_and_the_server_goes_on(apiphant_serve):
    """A watcher that reads nothing falls behind and is cut (it resumes with
    Last-Event-ID); the server keeps answering the others."""
    server = apiphant_serve(PRODUCT, '--watch-heartbeat', '60')
    stalled = open_watch(server, rcvbuf=4096)
    reader = open_watch(server)
    reader.next()
    big = 'x' * 60_000
    for n in range(160):  # ~10 MB of events: more than the kernel's buffers, and a reader may fall behind
        ok(server, 'v0/tasks/create', {'title': f'{n} {big}'})
        assert reader.next()['event'] == 'create'
    time.sleep(0.3)
    data = b''
    try:
        while True:
            more = stalled.sock.recv(1 << 20)
            if not more:
                break
            data += more
    except OSError:
        pass
    assert len(data) < 160 * 60_000  # cut before it had them all
    assert 'fell' in server.output and 'behind its event stream: cut' in server.output
    stalled.close()
    assert ok(server, 'v0/tasks/list', {'page_size': 1})['meta']['has_more']
    reader.close()


def test_deleting_a_row_reports_what_its_references_did(live):
    """cascade deletes and set null updates are changes of their tables too."""
    project = ok(live, 'v0/projects/create', {'name': 'p'})
    item = ok(live, 'v0/items/create', {'name': 'i', 'project': project['id']})
    link = ok(live, 'v0/links/create', {'name': 'l', 'project': project['id']})
    items, links = open_watch(live, 'v0/items'), open_watch(live, 'v0/links')
    items.next(), links.next()
    ok(live, 'v0/projects/delete', {'id': project['id']})
    assert items.next() == {'id': items.last_id, 'event': 'delete', 'data': {'id': item['id']}}
    nulled = links.next()
    assert nulled['event'] == 'update' and nulled['data']['project'] is None
    assert nulled['data']['version'] == link['version'] + 1
    assert ok(live, 'v0/links/read', {'id': link['id']}) == nulled['data']
    items.close(), links.close()


def test_a_stream_ends_when_its_token_expires(apiphant_serve):
    server = apiphant_serve(PRODUCT, '--watch-heartbeat', '0.2')
    expired = -(tokens._LEEWAY - 2) / 60  # past its exp, within the leeway for two seconds more
    watch = open_watch(server, 'v0/notes', token=server.token(1, minutes=expired))
    watch.next()
    started = time.monotonic()
    assert watch.end(timeout=5) is True
    assert time.monotonic() - started < 4


def test_sigterm_ends_streams_cleanly_and_the_client_resumes_on_the_next_process(apiphant_serve, tmp_path):
    database = f'sqlite:///{tmp_path / "live.sqlite3"}'
    first = apiphant_serve(PRODUCT, '--database-url', database, '--watch-heartbeat', '60')
    watch = open_watch(first)
    last = watch.next()['id']
    ok(first, 'v0/tasks/create', {'title': 'before'})
    last = watch.next()['id']
    first.stop(signal.SIGTERM)
    assert watch.end() is True  # the chunked body's end: a clean end, not a cut
    second = apiphant_serve(PRODUCT, '--database-url', database, '--watch-heartbeat', '60')
    while_away = ok(second, 'v0/tasks/create', {'title': 'while away'})
    back = open_watch(second, last_id=last)
    assert back.next()['data'] == while_away
    assert back.next()['event'] == 'ready'
    back.close()


def _request_process(watch):
    return watch.headers['x-request-id'].split('-')[0]


def _exactly_once(servers, writers=4, seconds=2.0, watchers_each=3, watch_servers=None):
    """Watchers on each server (and each process of it), writers on every
    server at once: every watcher gets every change once, in the order of
    the log, each row's versions in order."""
    watch_servers = watch_servers or servers
    watches = [open_watch(server) for server in watch_servers for _ in range(watchers_each)]
    for watch in watches:
        assert watch.status == 200
        watch.next()
    stop = time.monotonic() + seconds
    made, failures = [], []

    def write(n):
        server = servers[n % len(servers)]
        session = requests.Session()
        while time.monotonic() < stop:
            try:
                row = session.post(f'{server.url}/api/v0/tasks/create', json={'title': f'w{n}'}, timeout=10).json()
                row = session.post(f'{server.url}/api/v0/tasks/update', json={'id': row['id'], 'points': 1},
                                   timeout=10).json()
                made.append(row['id'])
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and made
    expected = 2 * len(made)
    seen = []
    for watch in watches:
        events = watch.events(expected, timeout=10)
        ids = [e['id'] for e in events]
        assert ids == sorted(ids) and len(set(ids)) == expected  # in order, none twice
        seen.append(ids)
        by_row = {}
        for event in events:
            by_row.setdefault(event['data']['id'], []).append((event['event'], event['data']['version']))
        assert all(changes == [('create', 1), ('update', 2)] for changes in by_row.values())
        assert sorted(by_row) == sorted(made)
        watch.quiet(0.2)
        watch.close()
    assert all(ids == seen[0] for ids in seen)  # every watcher, the same changes
    return watches


def test_two_sqlite_workers_deliver_every_change_once_in_order(apiphant_serve):
    server = apiphant_serve(PRODUCT, '--workers', '2', '--watch-heartbeat', '60')
    processes = set()
    deadline = time.monotonic() + 10
    while len(processes) < 2 and time.monotonic() < deadline:  # watchers on both workers
        probe = open_watch(server)
        processes.add(_request_process(probe))
        probe.close()
    assert len(processes) == 2
    _exactly_once([server], watchers_each=8)


@pytest.fixture
def postgresql_schema():
    try:
        import psycopg
        admin = psycopg.connect(POSTGRESQL, autocommit=True, connect_timeout=3)
    except Exception as error:  # noqa: BLE001
        skip_or_fail(f'PostgreSQL is not reachable at {POSTGRESQL}: {error}')
    schema = f'live_{uuid.uuid4().hex[:10]}'
    admin.execute(f'CREATE SCHEMA {schema}')
    try:
        yield f'{POSTGRESQL}?options=-csearch_path%3D{schema}'
    finally:
        admin.execute(f'DROP SCHEMA {schema} CASCADE')
        admin.close()


@pytest.fixture
def on_postgresql(apiphant_serve, postgresql_schema):
    """``serve()``: a server of the product on the test's PostgreSQL schema; two make two processes."""
    return lambda: apiphant_serve(PRODUCT, '--watch-heartbeat', '60', env={'APIPHANT_DATABASE_URL': postgresql_schema})


def test_postgresql_two_processes_deliver_every_change_once_in_commit_order(on_postgresql):
    one, two = on_postgresql(), on_postgresql()
    _exactly_once([one, two], writers=6)


def test_postgresql_resume_after_a_killed_connection_misses_nothing(on_postgresql):
    one, two = on_postgresql(), on_postgresql()
    watch = open_watch(one)
    watch.next()
    first = ok(two, 'v0/tasks/create', {'title': 'seen on one'})
    seen = watch.next()
    assert seen['data'] == first
    watch.close()
    missed = [ok(one if n % 2 else two, 'v0/tasks/create', {'title': f'missed {n}'}) for n in range(4)]
    back = open_watch(two, last_id=seen['id'])
    assert [e['data'].get('id') for e in back.events(5)] == [row['id'] for row in missed] + [None]
    assert call(one, 'v0/tasks/failed_batch').status_code == 400
    after = ok(one, 'v0/tasks/create', {'title': 'after'})
    assert back.next()['data'] == after  # the rolled-back batch sent nothing
    back.close()


def test_postgresql_a_watch_is_woken_by_another_process_at_once(on_postgresql):
    """NOTIFY, not the one-second poll, carries a change to another process."""
    one, two = on_postgresql(), on_postgresql()
    watch = open_watch(one)
    watch.next()
    took = []
    for n in range(5):
        started = time.monotonic()
        ok(two, 'v0/tasks/create', {'title': f'n{n}'})
        watch.next()
        took.append(time.monotonic() - started)
    assert sorted(took)[2] < 0.5, took  # the median: a poll would make it about half a second
    watch.close()


def test_sqlite_watchers_of_many_tables_and_a_where_with_every_kind(live):
    when = '2026-11-29T10:00:00+00:00'
    watch = open_watch(live, where={'$or': [{'due': {'$ge': when}}, {'points': {'$in': [7, 8]}}],
                                    'title': {'$ne': None}})
    watch.next()
    ok(live, 'v0/tasks/create', {'title': 'early', 'due': '2026-01-01T00:00:00Z'})
    late = ok(live, 'v0/tasks/create', {'title': 'late', 'due': '2026-12-01T00:00:00+01:00'})
    seven = ok(live, 'v0/tasks/create', {'title': 'seven', 'points': 7})
    assert [e['data']['id'] for e in watch.events(2)] == [late['id'], seven['id']]
    watch.quiet(0.3)
    watch.close()


def test_a_reader_that_ends_its_stream_is_forgotten(apiphant_serve):
    server = apiphant_serve(PRODUCT, '--max-watchers', '1', '--watch-heartbeat', '60')
    for _ in range(3):  # each ends, and makes room for the next
        watch = open_watch(server)
        assert watch.status == 200, watch.body
        watch.next()
        watch.close()
        time.sleep(0.2)



def test_the_openapi_document_describes_the_stream(live):
    paths = requests.get(f'{live.url}/api/openapi.json', timeout=10).json()['paths']
    watch = paths['/api/v0/tasks/watch']
    assert set(watch) == {'get', 'post'}
    for method in ('get', 'post'):
        assert set(watch[method]['responses']['200']['content']) == {'text/event-stream'}
        assert {'400', '429', '503'} <= set(watch[method]['responses'])
        assert watch[method]['parameters'][0]['name'] == 'Last-Event-ID'
    assert watch['get']['parameters'][1]['name'] == 'where' and 'requestBody' not in watch['get']
    assert watch['post']['requestBody']['content']['application/json']['schema']['$ref'].endswith('tasks.Watch')
    assert '/api/v0/plain/watch' not in paths


def test_postgresql_changes_written_by_two_schedulers_reach_watchers_once(apiphant_serve, postgresql_schema):
    """Two schedulers share the runs; each run's write reaches the API's watchers once, by NOTIFY."""
    env = {'APIPHANT_DATABASE_URL': postgresql_schema}
    server = apiphant_serve(PRODUCT, '--watch-heartbeat', '60', env=env)
    watch = open_watch(server)
    watch.next()
    command = [sys.executable, '-m', 'apiphant.background', str(PRODUCT), '--database-url', postgresql_schema]
    schedulers = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, 'APIPHANT_REQUIRE_SERVICES': ''}) for _ in range(2)]
    try:
        events = [watch.next(timeout=10) for _ in range(3)]
    finally:
        for scheduler in schedulers:
            scheduler.send_signal(signal.SIGTERM)
        outputs = [scheduler.communicate(timeout=20)[1] for scheduler in schedulers]
    assert all(scheduler.returncode == 0 for scheduler in schedulers), outputs
    titles = [event['data']['title'] for event in events]
    assert [event['event'] for event in events] == ['create'] * 3
    assert len(set(titles)) == 3 and all(title.startswith('tick ') for title in titles)  # each run once
    time.sleep(0.5)
    rows = ok(server, 'v0/tasks/list', {'page_size': 100})['data']
    stored = sorted(row['title'] for row in rows)
    rest = []
    try:
        while True:
            rest.append(watch.next(timeout=0.5)['data']['title'])
    except TimeoutError:
        pass
    assert sorted(titles + rest) == stored  # every write the schedulers made, none twice
    watch.close()


WSGI_WATCH = '''
import io, json, sys, wsgiref.util
from apiphant.auth import tokens
from apiphant.crud import settings
import apiphant
tokens.configure('k1:' + 'k' * 40, '')
settings.configure(database_url=sys.argv[2])
application = apiphant.app(sys.argv[1])
body = b'{"where": {"done": false}}'
env = {'REQUEST_METHOD': 'POST', 'PATH_INFO': '/api/v0/tasks/watch', 'wsgi.input': io.BytesIO(body),
       'CONTENT_LENGTH': str(len(body)), 'CONTENT_TYPE': 'application/json'}
wsgiref.util.setup_testing_defaults(env)
answer = {}
chunks = application(env, lambda status, headers, exc_info=None: answer.update(status=status))
print(json.dumps([answer['status'], json.loads(b''.join(chunks))]))
'''


def test_through_another_wsgi_server_a_watch_is_a_501_that_says_why(tmp_path):
    done = subprocess.run([sys.executable, '-c', WSGI_WATCH, str(PRODUCT), f'sqlite:///{tmp_path / "w.sqlite3"}'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout.splitlines()[-1])
    assert status.startswith('501') and "apiphant's own server" in body['error']


def test_a_watch_asked_while_the_process_drains_is_closed_unanswered(live):
    """So that a proxy passes it to another process, instead of a stream that ends at once."""
    idle = socket.create_connection((live.host, live.port), timeout=5)  # kept alive into the drain's grace
    idle.sendall('POST /api/v0/tasks/list HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                 'Content-Length: 2\r\n\r\n{}'.encode())
    assert idle.recv(65536).startswith(b'HTTP/1.1 200')
    live.process.send_signal(signal.SIGTERM)
    live.wait_for_output('draining')
    idle.sendall(b'POST /api/v0/tasks/watch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                 b'Content-Length: 2\r\n\r\n{}')
    assert idle.recv(65536) == b''
    idle.close()


def test_a_watch_body_must_say_it_is_json(live):
    """As for every action: a form, which a browser sends across sites unasked, is a 415."""
    form = requests.post(f'{live.url}/api/v0/tasks/watch', data=b'{}', timeout=5,
                         headers={'Content-Type': 'application/x-www-form-urlencoded'})
    assert form.status_code == 415
    bare = requests.post(f'{live.url}/api/v0/tasks/watch', data=b'', timeout=5, stream=True)
    assert bare.status_code == 200  # no body: no where, every row
    bare.close()
