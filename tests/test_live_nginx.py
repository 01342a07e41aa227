"""Live tables through the deploy template's nginx (issue 15). Debian's nginx
runs the site as deploy.sh renders it (one API process, a spare loopback
port, /opt/myproduct moved under the test's directory, gzip on for every
type as an operator may have it) in front of tests/products/liveproduct,
served with a heartbeat each second:

- a watch stream gets each change at once (nothing buffers it), uncompressed,
  and outlives nginx's read timeout (shortened to 3 s here) on heartbeats;
- headless Chromium opens a page of public/ whose ``EventSource`` watches the
  tasks not done, and sees a change made by another client; the API process
  stopped (SIGTERM) and started again on its port, the ``EventSource`` comes
  back by itself with ``Last-Event-ID`` and gets the changes made while it
  was away, once each.

nginx is a Debian package: under APIPHANT_REQUIRE_SERVICES=1 (as root) a
missing one is installed with apt-get, elsewhere the tests skip, as in
test_deploy.py; chromium and chromium-driver as in test_docs_page.py.
"""
import json
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest
import requests

from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS
from livewatch import open_watch
from test_deploy import TEMPLATE, debian_packages, render, under, which
from test_deploy_e2e import free_ports, listening
from test_docs_page import _browser

READ_TIMEOUT = 3  # nginx's proxy_read_timeout for streams in this test: three heartbeats

PAGE = '''<!doctype html>
<meta charset="utf-8">
<title>Tasks not done</title>
<script>
  // Every event the page gets, for the test to read: its kind, id and data.
  window.received = [];
  const where = encodeURIComponent(JSON.stringify({done: false}));
  window.source = new EventSource('/api/v0/tasks/watch?where=' + where);
  for (const kind of ['ready', 'reset', 'create', 'update', 'delete']) {
    window.source.addEventListener(kind, (event) => {
      window.received.push({kind, id: Number(event.lastEventId), data: JSON.parse(event.data)});
    });
  }
</script>
'''


def api(port, database, *args):
    """liveproduct, heartbeats each second, on ``port`` (again after a stop)."""
    served = ServedProduct(PRODUCTS / 'liveproduct', '--database-url', database, '--watch-heartbeat', '1', *args)
    served.command[served.command.index('127.0.0.1:0')] = f'127.0.0.1:{port}'
    return served.start()


def start_nginx(directory, api_port, port):
    """nginx in the foreground with the template's site, as deploy.sh renders
    it, but for the streams' read timeout (READ_TIMEOUT); its process."""
    site = render(TEMPLATE, 'render_nginx', TEMPLATE / 'nginx' / 'myproduct', API_PROCESSES=1, API_PORT=api_port,
                  LISTEN=f'127.0.0.1:{port}')
    assert site.count('proxy_read_timeout 5m;') == 1  # the watch location's
    site = under(site.replace('proxy_read_timeout 5m;', f'proxy_read_timeout {READ_TIMEOUT}s;'), directory,
                 'myproduct')
    for name in ('log', 'public'):
        (directory / 'opt' / 'myproduct' / name).mkdir(parents=True)
    (directory / 'opt' / 'myproduct' / 'public' / 'live.html').write_text(PAGE)
    (directory / 'site').write_text(site)
    # Workers as root: the test's directories are root's alone.
    (directory / 'nginx.conf').write_text(
        f'user root;\ndaemon off;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log;\nevents {{}}\n'
        f'http {{\n    include /etc/nginx/mime.types;\n    gzip on;\n    gzip_types *;\n'
        f'    include {directory}/site;\n}}\n')
    with open(directory / 'nginx.out', 'w') as out:
        process = subprocess.Popen([which('nginx'), '-p', str(directory), '-e', str(directory / 'error.log'),
                                    '-c', str(directory / 'nginx.conf')], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f'nginx did not start: {(directory / "nginx.out").read_text()}')
        time.sleep(0.05)
    return process


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    debian_packages('nginx')
    directory = tmp_path_factory.mktemp('live-nginx')
    api_port = free_ports(2)  # the API's port, then nginx's
    port = api_port + 1
    database = f'sqlite:///{directory / "live.sqlite3"}'
    logs = directory / 'opt' / 'myproduct' / 'log'
    live = SimpleNamespace(api=api(api_port, database), api_port=api_port, database=database, host='127.0.0.1',
                           port=port, url=f'http://127.0.0.1:{port}', errors=logs / 'nginx-error.log',
                           access=logs / 'nginx-access.log')
    nginx = start_nginx(directory, api_port, port)
    yield live
    nginx.terminate()
    nginx.wait(10)
    live.api.stop()


def create(site, title):
    answer = requests.post(f'{site.url}/api/v0/tasks/create', json={'title': title}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_stream_through_nginx_comes_at_once_uncompressed_and_outlives_the_read_timeout(site):
    page = requests.get(site.url + '/live.html', headers={'Accept-Encoding': 'gzip'}, timeout=10)
    assert page.headers['Content-Encoding'] == 'gzip'  # gzip is on here for every type ...
    watch = open_watch(site, where={'done': False}, headers=['Accept-Encoding: gzip'])
    assert watch.status == 200
    assert watch.headers['content-type'] == 'text/event-stream'
    assert 'content-encoding' not in watch.headers  # ... but streams
    assert watch.headers['cache-control'] == 'no-store'
    assert watch.next()['event'] == 'ready'
    delays = []
    for n in range(3):
        started = time.monotonic()
        created = create(site, f'at once {n}')
        event = watch.next(timeout=2)
        delays.append(time.monotonic() - started)
        assert (event['event'], event['data']) == ('create', created)
    print(f'from a create through nginx to its event through nginx: {", ".join(f"{d * 1000:.1f}" for d in delays)} ms')
    assert max(delays) < 0.3

    heartbeats = watch.comments
    watch.quiet(READ_TIMEOUT * 2.5)  # nginx would end a stream quiet for READ_TIMEOUT: Ended
    assert watch.comments - heartbeats >= READ_TIMEOUT * 2
    assert watch.last_id >= event['id']  # each heartbeat carries the frontier
    created = create(site, 'after the quiet')
    assert watch.next(timeout=2)['data'] == created
    watch.close()
    assert 'upstream timed out' not in site.errors.read_text()

    # The watch location's own error pages keep the server's JSON ones.
    too_large = requests.post(f'{site.url}/api/v0/tasks/watch', data=b'{}' + b' ' * 2_000_000,
                              headers={'Content-Type': 'application/json'}, timeout=10)
    assert (too_large.status_code, too_large.json()) == (413, {'error': '413 Content Too Large'})


def _received(browser):
    return browser.execute_script('return window.received')


def _changes(received):
    return [(event['kind'], event['data']) for event in received if event['kind'] in ('create', 'update', 'delete')]


def _wait(browser, count, what, seconds=10):
    """The page's events once it has ``count`` changes (0: once it is ready)."""
    deadline = time.monotonic() + seconds
    while len(_changes(received := _received(browser))) < count or not received:
        assert time.monotonic() < deadline, f'the page did not get {what}: {received}'
        time.sleep(0.05)
    return received


def _watch_requests(browser):
    """The headers of each request of the page's EventSource, in order, as
    the network stack sent them (with Last-Event-ID, which the page's own
    request does not show)."""
    sent = []
    for entry in browser.get_log('performance'):
        message = json.loads(entry['message'])['message']
        if (message['method'] == 'Network.requestWillBeSentExtraInfo'
                and message['params']['headers'].get('Accept') == 'text/event-stream'):
            sent.append(message['params']['headers'])
    return sent


def test_event_source_in_chromium_sees_a_change_and_resumes_after_a_restart(site, tmp_path):
    """A watch that reaches the stopping API in its drain's first second (on
    an idle keep-alive connection of nginx's) is closed unanswered, as when
    no process listens: nginx closes the page's request (444, logged 502) and
    the page retries; it sees each change once."""
    browser = _browser(tmp_path)
    side = None
    try:
        browser.get(site.url + '/live.html')
        _wait(browser, 0, 'ready')
        seen = create(site, 'seen by the page')
        _wait(browser, 1, 'the create')

        assert site.api.stop(signal.SIGTERM) == 0  # the stream ends cleanly; the page retries each second
        side = api(free_ports(1), site.database)  # another process on the database, not behind nginx
        while_away = requests.post(f'{side.url}/api/v0/tasks/create', json={'title': 'made while away'},
                                   timeout=10).json()
        done = requests.post(f'{side.url}/api/v0/tasks/update', json={'id': seen['id'], 'done': True},
                             timeout=10).json()
        assert done['done'] is True
        time.sleep(1.5)  # a retry or two, each closed by nginx without an answer (444)
        assert browser.execute_script('return window.source.readyState') == 0  # CONNECTING: it did not give up
        assert _changes(_received(browser)) == [('create', seen)]

        site.api = api(site.api_port, site.database)
        _wait(browser, 3, 'the changes made while it was away')
        after = create(site, 'after the restart')
        received = _wait(browser, 4, 'the create after the restart')
        sent = _watch_requests(browser)
    finally:
        browser.quit()
        if side is not None:
            side.stop()
    assert _changes(received) == [('create', seen), ('create', while_away), ('delete', {'id': seen['id']}),
                                  ('create', after)]
    kinds = [event['kind'] for event in received]
    assert kinds[0] == 'ready' and kinds[-4:] == ['create', 'delete', 'ready', 'create'] and 'reset' not in kinds
    ids = [event['id'] for event in received if event['kind'] != 'ready']
    assert ids == sorted(set(ids))
    assert 'Last-Event-ID' not in sent[0] and all('Last-Event-ID' in headers for headers in sent[1:])
    assert ids[0] <= int(sent[-1]['Last-Event-ID']) < ids[1]  # the page's last id when it went away
    retries = [line for line in site.access.read_text().splitlines() if '/watch?' in line and '" 502 0 ' in line]
    assert retries and len(sent) >= 3  # the first, the retries closed by nginx (logged 502), the last
