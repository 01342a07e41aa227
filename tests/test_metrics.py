"""apiphant.metrics: the exposition parsed with Prometheus's own parser;
snapshots of other processes (alive, gone, a PID used twice) added up; the
/metrics route and who may read it; then the real daemon after known traffic
(alone and with --workers 2), the scheduler's runs, CRUD's waits and 503s.

Counts are exact. Where another process's numbers arrive with its next
snapshot (once a second), a test polls until they do, then checks them."""
import fcntl
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from apiphant import metrics as metrics_module
from apiphant.dispatch import Application
from apiphant.limits import contains
from apiphant.metrics import CONTENT_TYPE, FAMILIES, LOOPBACK, REQUEST_BUCKETS, Metrics, reporting, route
from conftest import PRODUCTS, ROOT, raw_exchange
from test_crud import ok, post
from test_crud_faults import holding

ECHO = '/api/v0/echo/read'
JSON = {'Content-Type': 'application/json'}


def parse(text):
    """``{(sample name, frozenset of labels): value}`` and ``{family: type}``."""
    if isinstance(text, bytes):
        text = text.decode()
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f'{key} twice'
            samples[key] = sample.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def matching(samples, name, **labels):
    """The samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {key: found for key, found in samples.items() if key[0] == name and wanted <= key[1]}


def scrape(server, **headers):
    response = requests.get(server.url + '/metrics', headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers['Content-Type'] == CONTENT_TYPE
    return parse(response.text)[0]


def poll(server, done, timeout=20):
    """Scrape until ``done(samples)``; the last samples either way."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


# In process: the exposition


def test_an_empty_registry_renders_every_family():
    samples, types = parse(Metrics().render())
    expected = {name.removesuffix('_total') if kind == 'counter' else name: kind for name, kind, _ in FAMILIES}
    assert types == {f'apiphant_{name}': kind for name, kind in expected.items()}
    for name in ('requests_shed_total', 'requests_limited_total', 'database_waits_total',
                 'database_unavailable_total', 'requests_in_flight', 'connections_open'):
        assert value(samples, f'apiphant_{name}') == 0
    assert value(samples, 'apiphant_database_wait_seconds_count') == 0
    assert value(samples, 'apiphant_process_start_time_seconds', kind='api', pid=str(os.getpid())) > 0
    assert not matching(samples, 'apiphant_requests_total')


def test_requests_by_route_and_status_with_their_buckets():
    metrics = Metrics()
    for seconds in (0.0004, 0.001, 0.003, 0.3, 12.0):
        metrics.request_started()
        metrics.request_finished(ECHO, 200, seconds)
    metrics.request_started()
    metrics.request_finished(ECHO, '400 Bad Request', 0.002)  # a status line counts as its code
    for status in (404, '404 Not Found'):  # one sample
        metrics.request_started()
        metrics.request_finished(None, status, 0.0001)
    metrics.request_started()  # still in flight
    metrics.connection_opened()
    metrics.connection_opened()
    metrics.connection_closed()
    metrics.rejected(413)
    metrics.rejected(413)
    metrics.rejected(505)
    metrics.shed()
    metrics.limited()
    metrics.limited()
    samples, _ = parse(metrics.render())
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 5
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='400') == 1
    assert value(samples, 'apiphant_requests_total', route='none', status='404') == 2
    assert len(matching(samples, 'apiphant_requests_total')) == 3
    buckets = {dict(key[1])['le']: found for key, found in
               matching(samples, 'apiphant_request_duration_seconds_bucket', route=ECHO).items()}
    assert len(buckets) == len(REQUEST_BUCKETS) + 1
    assert buckets['0.001'] == 2 and buckets['0.0025'] == 3 and buckets['0.005'] == 4
    assert buckets['0.25'] == 4 and buckets['0.5'] == 5 and buckets['10.0'] == 5 and buckets['+Inf'] == 6
    assert value(samples, 'apiphant_request_duration_seconds_count', route=ECHO) == 6
    assert value(samples, 'apiphant_request_duration_seconds_sum', route=ECHO) == pytest.approx(12.3064)
    assert value(samples, 'apiphant_request_duration_seconds_count', route='none') == 2
    assert value(samples, 'apiphant_requests_in_flight') == 1
    assert value(samples, 'apiphant_connections_open') == 1
    assert value(samples, 'apiphant_requests_rejected_total', status='413') == 2
    assert value(samples, 'apiphant_requests_rejected_total', status='505') == 1
    assert value(samples, 'apiphant_requests_shed_total') == 1
    assert value(samples, 'apiphant_requests_limited_total') == 2


def test_database_and_tasks_report_through_the_process_metrics(monkeypatch):
    metrics_module.database_wait(1.0)  # no Metrics in this process yet: nothing happens
    monkeypatch.setattr(metrics_module, 'PROCESS', Metrics('background'))
    metrics_module.database_wait(0.0002)
    metrics_module.database_wait(0.7)
    metrics_module.database_unavailable()
    metrics_module.task_run('send', False, 0.5)
    metrics_module.task_run('send', True, 20.0)
    metrics_module.task_run('sweep', False, 0.001)
    samples, _ = parse(metrics_module.PROCESS.render())
    assert value(samples, 'apiphant_database_waits_total') == 2
    assert value(samples, 'apiphant_database_wait_seconds_count') == 2
    assert value(samples, 'apiphant_database_wait_seconds_bucket', le='0.5') == 1
    assert value(samples, 'apiphant_database_wait_seconds_sum') == pytest.approx(0.7002)
    assert value(samples, 'apiphant_database_unavailable_total') == 1
    assert value(samples, 'apiphant_task_runs_total', task='send') == 2
    assert value(samples, 'apiphant_task_failures_total', task='send') == 1
    assert value(samples, 'apiphant_task_failures_total', task='sweep') == 0
    assert value(samples, 'apiphant_task_duration_seconds_bucket', task='send', le='1.0') == 1
    assert value(samples, 'apiphant_task_duration_seconds_sum', task='send') == 20.5
    assert value(samples, 'apiphant_process_start_time_seconds', kind='background', pid=str(os.getpid())) > 0


def test_label_values_are_escaped():
    metrics = Metrics()
    metrics.task_run('a "quoted"\\task\nname', False, 1.0)
    samples, _ = parse(metrics.render())
    assert value(samples, 'apiphant_task_runs_total', task='a "quoted"\\task\nname') == 1


# In process: snapshots of several processes

CHILD = '''
import sys
from apiphant.metrics import Metrics
metrics = Metrics('api', sys.argv[1])
for _ in range(3):
    metrics.request_started()
    metrics.request_finished('/api/v0/echo/read', 200, 0.002)
metrics.request_started()
metrics.connection_opened()
metrics.rejected(431)
metrics.tick()
print('ticked', flush=True)
if sys.argv[2] == 'stay':
    sys.stdin.read()
'''


def test_snapshots_of_processes_alive_and_gone_add_up(tmp_path):
    gone_child(tmp_path)
    alive = subprocess.Popen([sys.executable, '-c', CHILD, str(tmp_path), 'stay'],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout.readline() == 'ticked\n'
        mine = Metrics('api', tmp_path)
        mine.request_started()
        mine.request_finished(ECHO, 200, 0.5)
        samples, _ = parse(mine.render())
        assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 7
        assert value(samples, 'apiphant_request_duration_seconds_count', route=ECHO) == 7
        assert value(samples, 'apiphant_request_duration_seconds_bucket', route=ECHO, le='0.0025') == 6
        assert value(samples, 'apiphant_requests_rejected_total', status='431') == 2
        assert value(samples, 'apiphant_requests_in_flight') == 1  # the child alive; the one gone no more
        assert value(samples, 'apiphant_connections_open') == 1
        started = matching(samples, 'apiphant_process_start_time_seconds')
        assert {dict(labels)['pid'] for _, labels in started} == {str(os.getpid()), str(alive.pid)}
    finally:
        alive.stdin.close()
        alive.wait(10)
        alive.stdout.close()
    samples, _ = parse(mine.render())
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 7  # never backward
    assert value(samples, 'apiphant_requests_in_flight') == 0
    assert len(matching(samples, 'apiphant_process_start_time_seconds')) == 1


def gone_child(directory):
    """A process that counts (CHILD), writes its snapshot and ends."""
    done = subprocess.run([sys.executable, '-c', CHILD, str(directory), 'go'], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout == 'ticked\n', done.stderr
    return done


def test_snapshots_of_processes_gone_are_folded_into_one_file(tmp_path, monkeypatch):
    gone_child(tmp_path)
    gone_child(tmp_path)
    mine = Metrics('api', tmp_path)
    mine.request_started()
    mine.request_finished(ECHO, 200, 0.5)
    before, _ = parse(mine.render())
    assert value(before, 'apiphant_requests_total', route=ECHO, status='200') == 7
    folded = {path.name: path.read_bytes() for path in tmp_path.glob('api-*.json') if path != Path(mine.path)}
    assert len(folded) == 2
    mine.compact()
    assert sorted(os.listdir(tmp_path)) == sorted(['.lock', 'gone.json', f'api-{os.getpid()}.json'])
    assert parse(mine.render())[0] == before
    for name, data in folded.items():  # as a reader that listed the files just before they were folded sees them
        (tmp_path / name).write_bytes(data)
    assert parse(mine.render())[0] == before  # each counted once: the archive names what it absorbed
    for name in folded:
        (tmp_path / name).unlink(missing_ok=True)
    gone_child(tmp_path)
    monkeypatch.setattr(metrics_module, 'COMPACT_EVERY', 1)
    mine.tick()  # folds the third one into the archive
    assert len(list(tmp_path.glob('api-*.json'))) == 1
    after, _ = parse(mine.render())
    assert value(after, 'apiphant_requests_total', route=ECHO, status='200') == 10
    assert value(after, 'apiphant_requests_rejected_total', status='431') == 3
    assert value(after, 'apiphant_request_duration_seconds_bucket', route=ECHO, le='0.0025') == 9


def test_one_process_folds_at_a_time(tmp_path):
    gone_child(tmp_path)
    mine = Metrics('api', tmp_path)
    lock = os.open(tmp_path / '.lock', os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as another process folding now
        mine.compact()
    finally:
        os.close(lock)
    assert len(list(tmp_path.glob('api-*.json'))) == 2 and not (tmp_path / 'gone.json').exists()
    mine.compact()
    assert len(list(tmp_path.glob('api-*.json'))) == 1


def test_a_pid_used_again_keeps_the_counts_of_the_first(tmp_path):
    first = Metrics('api', tmp_path)
    first.request_started()
    first.request_finished(ECHO, 200, 0.01)
    first.request_started()
    first.tick()
    second = Metrics('api', tmp_path)  # as a new process with the same PID would
    mine = f'api-{os.getpid()}.json'
    [moved] = set(os.listdir(tmp_path)) - {mine}
    assert re.fullmatch(rf'api-{os.getpid()}-\d+\.json', moved) and (tmp_path / mine).exists()
    samples, _ = parse(second.render())
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 1
    assert value(samples, 'apiphant_requests_in_flight') == 0


def test_tick_writes_whole_files_only_when_something_changed(tmp_path):
    metrics = Metrics('api', tmp_path / 'made')  # its first snapshot written at once
    path = tmp_path / 'made' / f'api-{os.getpid()}.json'
    written = os.stat(path).st_ino
    metrics.tick()
    assert os.stat(path).st_ino == written
    metrics.shed()
    metrics.tick()
    assert os.stat(path).st_ino != written
    assert os.listdir(tmp_path / 'made') == [path.name]  # no temporary file left
    assert json.loads(path.read_bytes())['pid'] == os.getpid()


def test_a_file_that_is_not_a_snapshot_is_skipped(tmp_path, caplog):
    (tmp_path / 'api-1.json').write_text('{"half": ')
    (tmp_path / 'notes.txt').write_text('not json')
    metrics = Metrics('api', tmp_path)
    metrics.limited()
    samples, _ = parse(metrics.render())
    assert value(samples, 'apiphant_requests_limited_total') == 1
    assert 'api-1.json is not a snapshot' in caplog.text


def test_kind_is_a_name_and_the_directory_usable(tmp_path):
    with pytest.raises(ValueError, match='kind'):
        Metrics('../api')
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='the metrics directory .*/file/metrics cannot be used'):
        Metrics('api', tmp_path / 'file' / 'metrics')


def test_reporting_sets_the_process_metrics_and_writes_at_the_end(tmp_path):
    with reporting('background', '') as nothing:
        assert nothing is None and metrics_module.PROCESS is None
    with reporting('background', str(tmp_path)) as metrics:
        assert metrics_module.PROCESS is metrics
        metrics_module.task_run('send', False, 0.1)
    assert metrics_module.PROCESS is None
    snapshot = json.loads((tmp_path / f'background-{os.getpid()}.json').read_bytes())
    assert ['task_runs_total', [['task', 'send']], 1] in snapshot['counters']


# In process: the route


def wsgi(application, client, path='/metrics', method='GET'):
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=dict(headers))
    body = b''.join(application({'REQUEST_METHOD': method, 'PATH_INFO': path, 'REMOTE_ADDR': client,
                                 'wsgi.input': None}, start_response))
    return answer['status'], answer['headers'], body


def test_the_route_answers_allowed_clients_only():
    metrics = Metrics()
    metrics.shed()
    application = Application({'/metrics': route(metrics, [ipaddress.ip_network('10.0.0.0/8'), *LOOPBACK])})
    status, headers, body = wsgi(application, '10.1.2.3')
    assert status == '200 OK' and headers['Content-Type'] == CONTENT_TYPE
    assert value(parse(body)[0], 'apiphant_requests_shed_total') == 1
    status, headers, body = wsgi(application, '203.0.113.9')
    assert (status, json.loads(body)) == ('403 Forbidden', {'error': '403 Forbidden'})
    assert wsgi(application, '127.0.0.1', method='POST')[0] == '405 Method Not Allowed'


@pytest.mark.parametrize('client, allowed', [
    ('127.0.0.1', True), ('127.8.9.10', True), ('::1', True), ('::ffff:127.0.0.1', True),
    ('203.0.113.9', False), ('::2', False), (None, False), ('/run/apiphant.sock', False), ('', False)])
def test_allows(client, allowed):
    assert contains(LOOPBACK, client) is allowed


# The real daemon


def test_known_traffic_is_counted_exactly(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    with requests.Session() as session:
        for number in range(7):
            assert session.post(server.url + ECHO, json={'n': number}, timeout=10).status_code == 200
        for number in range(3):  # no route: counted as route "none", never under the path sent
            assert session.post(f'{server.url}/api/v0/nothing{number}/read', timeout=10).status_code == 404
        for _ in range(2):
            assert session.post(server.url + ECHO, data=b'[1]', headers=JSON, timeout=10).status_code == 400
    too_large = raw_exchange(server, b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n'
                             % (64 << 20))
    assert too_large.startswith(b'HTTP/1.1 413 ')
    bad_framing = raw_exchange(server, b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n'
                               b'Content-Length: 3\r\n\r\n{}')
    assert bad_framing.startswith(b'HTTP/1.1 400 ')
    samples = scrape(server)
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 7
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='400') == 2
    assert value(samples, 'apiphant_requests_total', route='none', status='404') == 3
    assert len(matching(samples, 'apiphant_requests_total')) == 3
    assert value(samples, 'apiphant_request_duration_seconds_count', route=ECHO) == 9
    assert value(samples, 'apiphant_request_duration_seconds_bucket', route=ECHO, le='+Inf') == 9
    assert value(samples, 'apiphant_requests_rejected_total', status='413') == 1
    assert value(samples, 'apiphant_requests_rejected_total', status='400') == 1
    assert value(samples, 'apiphant_requests_in_flight') == 1  # this scrape
    assert value(samples, 'apiphant_connections_open') >= 1
    assert value(samples, 'apiphant_process_start_time_seconds', kind='api', pid=str(server.pid)) > 0
    again = scrape(server)
    assert value(again, 'apiphant_requests_total', route='/metrics', status='200') == 1
    assert value(again, 'apiphant_requests_total', route=ECHO, status='200') == 7


def test_workers_add_up(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--workers', '2')
    for number in range(20):  # a connection each: both workers take some
        assert requests.post(server.url + ECHO, json={'n': number}, timeout=10).status_code == 200

    def both_counted(samples):
        return (value(samples, 'apiphant_requests_total', route=ECHO, status='200') >= 20
                and len(matching(samples, 'apiphant_process_start_time_seconds', kind='api')) == 2)
    for _ in range(4):  # whichever worker answers, the same sums once the other's snapshot is in
        samples = poll(server, both_counted)
        assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 20
        pids = {dict(labels)['pid'] for _, labels in matching(samples, 'apiphant_process_start_time_seconds')}
        assert len(pids) == 2 and str(server.pid) not in pids  # the workers, not their parent


def echoes_in_files(directory):
    """The echoes the snapshot files hold, whoever wrote them."""
    return sum(count for path in directory.glob('api-*.json') for family, labels, count
               in json.loads(path.read_bytes())['counters'] if family == 'requests_total' and ['route', ECHO] in labels)


def test_a_worker_killed_keeps_its_counts(apiphant_serve, tmp_path):
    server = apiphant_serve(PRODUCTS / 'proto', '--workers', '2', env={'APIPHANT_METRICS_DIR': str(tmp_path)})
    for number in range(20):
        assert requests.post(server.url + ECHO, json={'n': number}, timeout=10).status_code == 200
    deadline = time.monotonic() + 20
    while echoes_in_files(tmp_path) < 20 and time.monotonic() < deadline:  # each worker's last tick
        time.sleep(0.1)
    assert echoes_in_files(tmp_path) == 20
    pids = {path.stem.split('-')[1] for path in tmp_path.glob('api-*.json')}
    assert len(pids) == 2
    killed = min(pids)
    os.kill(int(killed), signal.SIGKILL)  # its counts stay; its gauges go; the parent starts another

    def replaced(samples):
        alive = {dict(labels)['pid'] for _, labels in matching(samples, 'apiphant_process_start_time_seconds')}
        return len(alive) == 2 and killed not in alive
    samples = poll(server, replaced)
    assert replaced(samples)
    assert value(samples, 'apiphant_requests_total', route=ECHO, status='200') == 20


def test_scheduler_runs_show_in_the_api_metrics(apiphant_serve, tmp_path):
    directory = tmp_path / 'metrics'
    server = apiphant_serve(PRODUCTS / 'proto', env={'APIPHANT_METRICS_DIR': str(directory)})
    log_path = tmp_path / 'background.log'
    env = {key: found for key, found in os.environ.items() if not key.startswith('APIPHANT_')}
    with open(log_path, 'wb') as log:
        scheduler = subprocess.Popen(
            [sys.executable, str(ROOT / 'bin' / 'apiphant-background'), str(PRODUCTS / 'bgproduct'),
             '--lock-dir', str(tmp_path), '--log-level', 'debug'], stdout=subprocess.DEVNULL, stderr=log,
            env={**env, 'BG_RECORDS': str(tmp_path / 'records'), 'APIPHANT_METRICS_DIR': str(directory)})
    try:
        samples = poll(server, lambda samples: all(
            value(samples, 'apiphant_task_runs_total', task=task) >= 2 for task in ('tick', 'fails', 'hangs')))
        assert value(samples, 'apiphant_task_failures_total', task='fails') >= 2
        assert value(samples, 'apiphant_task_failures_total', task='tick') == 0
        assert value(samples, 'apiphant_process_start_time_seconds', kind='background', pid=str(scheduler.pid)) > 0
    finally:
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(30) == 0
    text = log_path.read_text()
    samples = scrape(server)  # the scheduler's last snapshot, written as it stopped
    for task in ('tick', 'slow', 'fails', 'hangs'):
        succeeded = len(re.findall(rf'Task {task}: OK\.', text))
        failed = len(re.findall(rf'Task {task} (?:failed:|interrupted)', text))
        assert value(samples, 'apiphant_task_runs_total', task=task) == succeeded + failed > 0, task
        assert value(samples, 'apiphant_task_failures_total', task=task) == failed, task
        assert value(samples, 'apiphant_task_duration_seconds_count', task=task) == succeeded + failed, task
    assert value(samples, 'apiphant_task_duration_seconds_bucket', task='hangs', le='0.1') == 0  # its 0.3 s timeout
    assert not matching(samples, 'apiphant_process_start_time_seconds', kind='background')  # gone


def test_database_waits_and_503s(apiphant_serve, tmp_path):
    server = apiphant_serve(PRODUCTS / 'crudproduct', env={
        'APIPHANT_DATABASE_URL': f'sqlite:///{tmp_path}/metrics.sqlite3', 'APIPHANT_DATABASE_WAIT': '0.3',
        'APIPHANT_DATABASE_POOL_SIZE': '1'})
    existing = ok(server, 'tasks/create', {'title': 'there'})
    before = scrape(server)
    with ThreadPoolExecutor(1) as pool:
        hold = pool.submit(ok, server, 'custom/hold', {'seconds': 1.2})  # the write turn and the one connection
        holding(server)
        assert post(server, 'tasks/create', {'title': 'late'}).status_code == 503  # waited 0.3 s for the turn
        assert post(server, 'tasks/list', {'where': {'id': existing['id']}}).status_code == 503  # and for the connection
        assert post(server, 'tasks/read', {'id': existing['id']}).status_code == 200  # a read by key takes none
        hold.result()
    after = scrape(server)

    def long_waits(samples):
        return (value(samples, 'apiphant_database_wait_seconds_count')
                - value(samples, 'apiphant_database_wait_seconds_bucket', le='0.1'))
    assert value(after, 'apiphant_database_unavailable_total') - value(before, 'apiphant_database_unavailable_total') == 2
    assert long_waits(after) - long_waits(before) == 2
    assert value(after, 'apiphant_database_waits_total') == value(after, 'apiphant_database_wait_seconds_count') > 4
    assert value(after, 'apiphant_requests_total', route='/api/v0/tasks/create', status='503') == 1


def test_a_client_outside_metrics_allow_gets_403(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', env={'APIPHANT_TRUSTED_PROXIES': '127.0.0.1'})
    far = requests.get(server.url + '/metrics', headers={'X-Forwarded-For': '203.0.113.9'}, timeout=10)
    assert (far.status_code, far.json()) == (403, {'error': '403 Forbidden'})
    samples = scrape(server, **{'X-Forwarded-For': '127.0.0.1'})
    assert value(samples, 'apiphant_requests_total', route='/metrics', status='403') == 1


def test_a_spoofed_address_from_an_untrusted_peer_is_not_believed(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--metrics-allow', '10.0.0.0/8')
    near = requests.get(server.url + '/metrics', headers={'X-Forwarded-For': '10.1.2.3'}, timeout=10)
    assert near.status_code == 403


def test_metrics_off(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', env={'APIPHANT_METRICS': 'off'})
    assert requests.get(server.url + '/metrics', timeout=10).status_code == 404
    assert requests.post(server.url + ECHO, json={}, timeout=10).status_code == 200
