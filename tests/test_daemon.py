"""The daemon as a process: limits, start-up failures, signals."""
import json
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS, raw_exchange

ECHO = '/api/v0/echo/read'


def test_oversized_content_length_gets_413_at_once(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
            b'Content-Length: %d\r\n\r\n{"a":'
                     % (64 << 20))
        answer = sock.recv(65536)  # with 5 bytes of the 64 MiB sent
    assert answer.startswith(b'HTTP/1.1 413 ')
    assert b'Connection: close' in answer
    assert answer.endswith(b'{"error":"413 Content Too Large"}')
    assert requests.post(server.url + ECHO, json={'still': 'serving'}, timeout=10).status_code == 200


def test_body_limit_is_a_setting(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--max-body-size', '1K')
    ok = requests.post(server.url + ECHO, data=b'{"a": "%s"}' % (b'x' * 1000), timeout=10,
                       headers={'Content-Type': 'application/json'})
    assert ok.status_code == 200
    too_big = requests.post(server.url + ECHO, data=b'{"a": "%s"}' % (b'x' * 1020), timeout=10,
                            headers={'Content-Type': 'application/json'})
    assert (too_big.status_code, too_big.json()) == (413, {'error': '413 Content Too Large'})


def test_oversized_chunked_body_gets_413(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', env={'APIPHANT_MAX_BODY_SIZE': '100'})
    chunk = b'{"a": "%s"}' % (b'x' * 200)
    answer = raw_exchange(server, b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        b'Transfer-Encoding: chunked'
                          b'\r\n\r\n%x\r\n%s\r\n0\r\n\r\n' % (len(chunk), chunk))
    assert answer.startswith(b'HTTP/1.1 413 ')


def test_expect_100_continue(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n'
                     b'Expect: 100-continue\r\n\r\n')
        assert sock.recv(1024).startswith(b'HTTP/1.1 100 Continue')
        sock.sendall(b'{"a": true}')
        assert sock.recv(65536).endswith(b'{"a":true,"server":"proto"}')


def test_sigterm_lets_requests_in_flight_finish(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')

    def slow(i):
        return requests.post(server.url + '/api/v0/slow/read', json={'seconds': 1.0}, timeout=20)

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(slow, i) for i in range(10)]
        time.sleep(0.4)  # the ten requests are inside the action's 1 s sleep by then
        server.process.send_signal(signal.SIGTERM)
        responses = [future.result() for future in futures]
    assert [r.status_code for r in responses] == [200] * 10
    assert all(r.headers.get('Connection') == 'close' for r in responses)
    assert server.process.wait(15) == 0
    assert 'SIGTERM: draining' in server.output and 'stopped' in server.output


def test_sigterm_closes_idle_keep_alive_connections_at_once(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--shutdown-timeout', '60')
    with socket.create_connection((server.host, server.port), timeout=5) as idle:
        idle.sendall(b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
            b'Content-Length: 2\r\n\r\n{}')
        assert idle.recv(65536).startswith(b'HTTP/1.1 200')
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0  # an idle connection would hold it for 60 s
        assert idle.recv(1024) == b''


def test_new_connections_are_refused_after_sigterm(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(15) == 0
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url + ECHO, timeout=5)


def test_sigint_exits_at_once(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(5) != 0


def run_cli(*args, timeout=20):
    return subprocess.run([sys.executable, '-m', 'apiphant', *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_syntax_error_exits_non_zero_naming_the_module():
    result = run_cli(PRODUCTS / 'broken', '127.0.0.1:0')
    assert result.returncode == 1
    assert 'cannot import broken.api.v0.bad: SyntaxError' in result.stderr
    assert 'bad.py, line 2' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_import_error_exits_non_zero_naming_the_module():
    result = run_cli(PRODUCTS / 'failing', '127.0.0.1:0')
    assert result.returncode == 1
    assert "cannot import failing.api.v0.imports: ModuleNotFoundError: No module named 'no_such_module" \
        in result.stderr


@pytest.mark.parametrize('args, message', [
    ((PRODUCTS / 'nowhere', '127.0.0.1:0'), 'no product directory'),
    (('no_such_package_anywhere', '127.0.0.1:0'), 'no product'),
    ((PRODUCTS / 'proto',), 'HOST:PORT is missing'),
    ((PRODUCTS / 'proto', '127.0.0.1'), 'is not HOST:PORT'),
    ((PRODUCTS / 'proto', '127.0.0.1:http'), 'is not HOST:PORT'),
    ((PRODUCTS / 'proto', '127.0.0.1:70000'), 'is not HOST:PORT'),
    ((PRODUCTS / 'proto', ':8001'), 'is not HOST:PORT'),
    ((PRODUCTS / 'proto', '127.0.0.1:0', '--max-body-size', 'lots'), 'is not a size'),
    ((PRODUCTS / 'proto', '127.0.0.1:0', '--shutdown-timeout', '-1'), 'is not a number of seconds'),
    ((PRODUCTS / 'proto', '127.0.0.1:0', '--log-level', 'loud'), 'is not one of'),
    ((PRODUCTS / 'proto', '127.0.0.1:0', '--no-such-option'), 'unrecognized arguments'),
])
def test_bad_command_lines_exit_with_a_usage_line(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert 'Traceback' not in result.stderr


def test_address_in_use_is_one_clear_line(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    result = run_cli(PRODUCTS / 'proto', f'127.0.0.1:{server.port}')
    assert result.returncode == 1
    assert 'cannot listen on' in result.stderr and 'Traceback' not in result.stderr


def test_routes_listing():
    result = run_cli(PRODUCTS / 'proto', '--routes')
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ['PATH', 'FUNCTION', 'ACCESS', 'DOC']
    assert any(line.startswith('/api/v0/a/b/c/read ') and 'proto.api.v0.a.b.c.read' in line for line in lines)
    assert any('/api/v0/echo/read' in line and 'Echo the request.' in line for line in lines)
    assert not any('traps/read' in line or 'vx' in line for line in lines)


def test_product_by_package_name(apiphant_serve):
    server = apiphant_serve('proto', env={'PYTHONPATH': str(PRODUCTS)})
    assert requests.post(server.url + ECHO, timeout=10).json() == {'server': 'proto'}


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip('no IPv6 on this machine')
    try:
        socket.create_server(('::1', 0), family=socket.AF_INET6).close()
    except OSError as error:
        pytest.skip(f'no IPv6 loopback: {error}')
    with ServedProduct(PRODUCTS / 'proto', host='::1') as server:
        assert server.host == '::1'
        assert requests.post(server.url + ECHO, timeout=10).json() == {'server': 'proto'}


def test_access_log_line(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    response = requests.post(server.url + ECHO, headers={'X-Request-Id': 'logged-1'}, timeout=10)
    assert response.status_code == 200
    assert server.wait_for_output(r"127\.0\.0\.1 POST /api/v0/echo/read 200 [\d.]+ms logged-1")


def test_access_log_off(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--access-log', 'off')
    requests.post(server.url + ECHO, headers={'X-Request-Id': 'not-logged'}, timeout=10)
    server.stop()
    assert 'not-logged' not in server.output


def test_access_log_to_a_file(apiphant_serve, tmp_path):
    log = tmp_path / 'access.log'
    server = apiphant_serve(PRODUCTS / 'proto', '--access-log', log)
    requests.post(server.url + ECHO, headers={'X-Request-Id': 'in-file'}, timeout=10)
    server.stop()
    assert 'in-file' in log.read_text()


def test_json_log_lines(apiphant_serve):
    """--log-format json: every line one JSON object: the access log's, and a
    crash's with its request id, route and traceback (for log shippers)."""
    server = apiphant_serve(PRODUCTS / 'proto', '--log-format', 'json')
    requests.post(server.url + ECHO, headers={'X-Request-Id': 'json-1'}, timeout=10)
    requests.post(server.url + '/api/v0/crash/read', headers={'X-Request-Id': 'json-2'}, timeout=10)
    server.stop()
    entries = [json.loads(line) for line in server.output.splitlines() if line.strip()]
    access = [e for e in entries if e.get('request_id') == 'json-1']
    assert access == [{'time': access[0]['time'], 'level': 'info', 'request_id': 'json-1', 'client': '127.0.0.1',
                       'method': 'POST', 'route': ECHO, 'status': 200, 'duration_ms': access[0]['duration_ms']}]
    crash = [e for e in entries if e.get('request_id') == 'json-2' and e['level'] == 'error']
    assert len(crash) == 1 and crash[0]['route'] == '/api/v0/crash/read'
    assert 'RuntimeError: secret detail' in crash[0]['exception'] and crash[0]['logger'] == 'apiphant'
    assert any(re.match(r'serving .*proto on http://', e.get('message', '')) for e in entries)


@pytest.mark.parametrize('kind', ['SystemExit', 'KeyboardInterrupt', 'GreenletExit', 'Timeout'])
def test_no_escape_from_an_action_stops_the_process(apiphant_serve, kind):
    server = apiphant_serve(PRODUCTS / 'proto')
    response = requests.post(server.url + '/api/v0/crash/update', json={'kind': kind},
                             headers={'X-Request-Id': f'escape-{kind}'}, timeout=10)
    assert (response.status_code, response.json()) == (500, {'error': '500 Internal Server Error'})
    assert server.wait_for_output(rf'/api/v0/crash/update failed, request id escape-{kind}')
    assert requests.post(server.url + ECHO, timeout=10).status_code == 200
    assert server.process.poll() is None


def test_sighup_does_not_stop_a_single_process(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    server.process.send_signal(signal.SIGHUP)
    assert server.wait_for_output('SIGHUP: ignored')
    assert requests.post(server.url + ECHO, timeout=10).status_code == 200
    assert server.stop() == 0
