"""Several worker processes on one port: replaced when they die or hang,
replaced one by one on SIGHUP with no failed request, stopped on SIGTERM."""
import os
import re
import shutil
import signal
import threading
import time

import pytest
import requests

from conftest import PRODUCTS

ECHO = '/api/v0/echo/read'


def worker_pids(server):
    return [int(pid) for pid in re.findall(r'worker \d+ started \(pid (\d+)\)', server.output)]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class Load:
    """Client threads posting echo over keep-alive sessions until stopped
    (bounded: at most 60 s); counts answers and failures."""

    def __init__(self, url, threads=4):
        self.url = url
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, index):
        deadline = time.monotonic() + 60
        with requests.Session() as session:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    response = session.post(self.url + ECHO, json={'i': index}, timeout=10)
                    if response.status_code == 200 and response.json() == {'i': index, 'server': 'proto'}:
                        self.ok += 1
                    else:
                        self.failures.append(f'{response.status_code} {response.text}')
                except requests.RequestException as error:
                    self.failures.append(repr(error))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def test_sighup_replaces_workers_one_by_one_without_a_failed_request(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--workers', '2', '--access-log', 'off')
    assert server.wait_for_output('serving with 2 workers')
    before = worker_pids(server)
    with Load(server.url) as load:
        time.sleep(0.5)
        server.process.send_signal(signal.SIGHUP)
        assert server.wait_for_output('all workers replaced', timeout=30)
        time.sleep(1.0)
        answered_during = load.ok
    assert load.failures == []
    assert answered_during > 50
    after = [pid for pid in worker_pids(server) if pid not in before]
    assert len(after) == 2 and all(alive(pid) for pid in after)
    assert wait_for(lambda: not any(alive(pid) for pid in before))
    assert server.stop() == 0


def test_a_killed_worker_is_replaced(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--workers', '2')
    assert server.wait_for_output('serving with 2 workers')
    victim = worker_pids(server)[0]
    os.kill(victim, signal.SIGKILL)
    assert server.wait_for_output(rf'pid {victim}\) exited with -9; starting another')
    assert server.wait_for_output(r'worker 3 started')
    for _ in range(10):
        assert requests.post(server.url + ECHO, timeout=10).status_code == 200
    assert server.stop() == 0


def test_a_worker_stuck_in_cpu_is_killed_and_replaced(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--workers', '2', '--stuck-timeout', '2')
    assert server.wait_for_output('serving with 2 workers')
    with pytest.raises(requests.RequestException):  # its worker dies under it
        requests.post(server.url + '/api/v0/cpu/read', json={'seconds': 30}, timeout=20)
    assert server.wait_for_output(r'sent no heartbeat for \d+s \(stuck in CPU\?\): killed')
    # faulthandler's dump on SIGABRT: the line the worker was stuck on
    assert server.wait_for_output(r'File ".*cpu\.py", line \d+ in read')
    assert server.wait_for_output(r'worker 3 started')
    assert requests.post(server.url + ECHO, timeout=10).status_code == 200
    assert server.stop() == 0


def test_sigterm_stops_every_worker(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--workers', '3')
    assert server.wait_for_output('serving with 3 workers')
    pids = worker_pids(server)
    assert server.stop() == 0
    assert not any(alive(pid) for pid in pids)


def test_a_worker_that_cannot_start_stops_the_server(apiphant_serve):
    from apiphant.pytest_plugin import ServedProduct
    server = ServedProduct(PRODUCTS / 'broken', '--workers', '2', start_timeout=20)
    with pytest.raises(RuntimeError, match='cannot import broken.api.v0.bad: SyntaxError'):
        server.start()
    assert server.process.returncode not in (None, 0)


def test_reload_on_a_changed_file(apiphant_serve, tmp_path):
    product = tmp_path / 'proto'
    shutil.copytree(PRODUCTS / 'proto', product)
    server = apiphant_serve(product, '--reload')
    assert server.wait_for_output('serving with 1 workers')
    assert requests.post(server.url + '/api/v1/echo/read', timeout=10).json() == {'version': 1}
    (product / 'api' / 'v1' / 'echo.py').write_text('def read(request):\n    return {"version": "1.1"}\n')
    assert server.wait_for_output('all workers replaced', timeout=20)
    assert requests.post(server.url + '/api/v1/echo/read', timeout=10).json() == {'version': '1.1'}


def test_a_watchdog_replaces_a_single_stuck_worker(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--watchdog', '--stuck-timeout', '2')
    assert server.wait_for_output('serving with 1 workers')
    with pytest.raises(requests.RequestException):  # its worker dies under it
        requests.post(server.url + '/api/v0/cpu/read', json={'seconds': 30}, timeout=20)
    assert server.wait_for_output(r'sent no heartbeat for \d+s \(stuck in CPU\?\): killed')
    assert server.wait_for_output(r'worker 2 started')
    assert requests.post(server.url + ECHO, timeout=10).status_code == 200
    assert server.stop() == 0
