"""apiphant's pytest plugin: real servers for functional tests.

- ``apiphant_server`` (session): serves the product named by the ini option
  ``apiphant_product`` (or ``APIPHANT_TEST_PRODUCT``) on an ephemeral
  loopback port and points ``apiphant.test.config`` at it.
- ``apiphant_serve`` (function): ``apiphant_serve('path/to/product', '--max-body-size', '1K')``
  starts one more server and stops it after the test.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from apiphant import test as apiphant_test

__all__ = ['ServedProduct']

_READY = re.compile(r'serving .* on http://(\[[^\]]+\]|[^:\s]+):(\d+)')


class ServedProduct:
    """A product served by a real ``apiphant`` process."""

    def __init__(self, product, *args, host='127.0.0.1', env=None, cwd=None, start_timeout=30):
        self.command = [sys.executable, '-m', 'apiphant', str(product), f'{host}:0', *map(str, args)]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.lines = []
        self.process = None
        self.host = self.port = None
        self._ready = threading.Event()

    def start(self):
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=self.env, cwd=self.cwd, text=True, encoding='utf-8', errors='replace')
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        if not self._ready.wait(self.start_timeout) or self.port is None:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f'apiphant did not start: {" ".join(self.command)}\n{self.output}')
        return self

    def _drain(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if self.port is None:
                match = _READY.search(line)
                if match:
                    self.host, self.port = match[1].strip('[]'), int(match[2])
                    self._ready.set()
        self._ready.set()  # the process ended

    @property
    def output(self):
        return ''.join(self.lines)

    @property
    def pid(self):
        return self.process.pid

    @property
    def url(self):
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}'

    def wait_for_output(self, pattern, timeout=10):
        """Wait until a line of the server's output matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output):
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Send ``sig`` and wait; the exit code (SIGKILL after ``timeout``)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drainer.join(5)
        if not self._drainer.is_alive():
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def pytest_addoption(parser):
    parser.addini('apiphant_product', 'the product the apiphant_server fixture serves: '
                  'a directory (relative to the rootdir) or a package name')


@pytest.fixture
def apiphant_serve():
    """Start servers of products for one test; all are stopped after it."""
    started = []

    def serve(product, *args, **options):
        server = ServedProduct(product, *args, **options).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


@pytest.fixture(scope='session')
def apiphant_server(pytestconfig):
    """The product under test, served for the whole session; ``apiphant.test.config`` points at it."""
    product = os.environ.get('APIPHANT_TEST_PRODUCT') or pytestconfig.getini('apiphant_product')
    if not product:
        raise pytest.UsageError('apiphant_server needs the ini option apiphant_product '
                                '(or APIPHANT_TEST_PRODUCT): the product to serve')
    path = pytestconfig.rootpath / product
    server = ServedProduct(path if path.is_dir() else product).start()
    saved = dict(apiphant_test.config)
    apiphant_test.config.update(host=server.host, port=server.port)
    try:
        yield server
    finally:
        apiphant_test.config.clear()
        apiphant_test.config.update(saved)
        server.stop()
