"""GET /api/client.js, and the JavaScript client itself under Node's test
runner (tests/jsclient.test.mjs) against real servers of the proto product,
and its watch (tests/jsclient_watch.test.mjs) against one of liveproduct."""
import os
import re
import shutil
import socket
import subprocess

import requests

from apiphant.jsclient import CONTENT_TYPE, PATH, source
from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS, ROOT, skip_or_fail

NODE_TESTS = ROOT / 'tests' / 'jsclient.test.mjs'
NODE_WATCH_TESTS = ROOT / 'tests' / 'jsclient_watch.test.mjs'


def test_the_daemon_serves_the_module_as_it_is(proto):
    answer = requests.get(proto.url + PATH, timeout=10)
    assert answer.status_code == 200
    assert answer.headers['Content-Type'] == CONTENT_TYPE
    assert answer.content == (ROOT / 'apiphant' / 'client.js').read_bytes() == source()
    assert answer.content.startswith(b'// apiphant\'s JavaScript client')
    assert b'export class Client' in answer.content


def test_the_module_is_got_not_posted(proto):
    answer = requests.post(proto.url + PATH, json={}, timeout=10)
    assert (answer.status_code, answer.headers['Allow'], answer.json()) == (
        405, 'GET', {'error': '405 Method Not Allowed'})


def test_client_js_off_serves_no_module(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--access-log', 'off', env={'APIPHANT_CLIENT_JS': 'off'})
    assert requests.get(server.url + PATH, timeout=10).status_code == 404


def test_the_module_names_every_error_class_of_the_server():
    from apiphant import errors
    module = source().decode()
    for name in errors.__all__:
        if name[0].isupper() and name != 'ApiError':
            assert re.search(rf'^export class {name} extends', module, re.M), name


def node():
    """The node command, when it is Node 20 or later."""
    found = shutil.which('node')
    if found is None:
        skip_or_fail('node is not installed (the JavaScript client is tested with Node 20+)')
    version = subprocess.run([found, '--version'], capture_output=True, text=True, timeout=30).stdout.strip()
    if int(version.lstrip('v').split('.')[0]) < 20:
        skip_or_fail(f'node {version} is older than 20')
    return found


def dead_port():
    """A loopback port nobody listens on (bound, never listening, kept so)."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    return sock


def test_the_javascript_client_under_node(tmp_path):
    command = node()
    options = ('--access-log', 'off', '--max-body-size', '1K')
    with ServedProduct(PRODUCTS / 'proto', *options) as api, \
            ServedProduct(PRODUCTS / 'proto', *options, '--max-in-flight', '1') as capped, dead_port() as dead:
        env = {**os.environ, 'API_URL': api.url, 'CAPPED_URL': capped.url,
               'DEAD_URL': f'http://127.0.0.1:{dead.getsockname()[1]}', 'HELD_FILE': str(tmp_path / 'release')}
        result = subprocess.run([command, '--test', '--test-reporter', 'spec', str(NODE_TESTS)], env=env,
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r'^\S* ?pass (\d+)', result.stdout, re.M)[1] == str(len(
        re.findall(r'^test\(', NODE_TESTS.read_text(), re.M))), result.stdout
    assert re.search(r'^\S* ?fail 0$', result.stdout, re.M), result.stdout


def test_the_javascript_watch_under_node(tmp_path):
    command = node()
    database = f'sqlite:///{tmp_path / "live.sqlite3"}'
    with ServedProduct(PRODUCTS / 'liveproduct', '--access-log', 'off', '--watch-heartbeat', '0.2',
                       env={'APIPHANT_DATABASE_URL': database}) as live:
        env = {**os.environ, 'LIVE_URL': live.url, 'TOKEN': live.token(7), 'EXPIRED': live.token(7, minutes=-1)}
        result = subprocess.run([command, '--test', '--test-reporter', 'spec', str(NODE_WATCH_TESTS)], env=env,
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r'^\S* ?pass (\d+)', result.stdout, re.M)[1] == str(len(
        re.findall(r'^test\(', NODE_WATCH_TESTS.read_text(), re.M))), result.stdout
    assert re.search(r'^\S* ?fail 0$', result.stdout, re.M), result.stdout
