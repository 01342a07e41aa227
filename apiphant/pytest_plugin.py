"""apiphant's pytest plugin: real servers for functional tests.

- ``apiphant_server`` (session): serves the product named by the ini option
  ``apiphant_product`` (or ``APIPHANT_TEST_PRODUCT``) on an ephemeral
  loopback port and points ``apiphant.test.config`` at it.
- ``apiphant_serve`` (function): ``apiphant_serve('path/to/product', '--max-body-size', '1K')``
  starts one more server and stops it after the test.
- ``apiphant_token`` (function): ``apiphant_token(7, ['admin'])`` is an
  access token of the user 7 with the role admin for ``apiphant_server``,
  minted without a login: ``test(..., token=apiphant_token(7))``.

Each server signs and verifies tokens with keys of its own, made for it
(``ServedProduct.token()`` mints one); keys exported in the shell are not
passed on.

A product's tests never touch the developer's database: the servers of
both fixtures keep their rows in a fresh SQLite file of a temporary
directory, and an ``APIPHANT_DATABASE_URL`` exported in the shell is not
passed on. ``apiphant_server`` serves on PostgreSQL (or another SQLite file)
when told so by the ini option ``apiphant_test_database_url`` or by
``APIPHANT_TEST_DATABASE_URL``, and only when the database's name (or the
file's) says ``test``; in PostgreSQL it works in a schema of its own,
created for the session and dropped after. ``apiphant_serve`` takes the
database given to it (``--database-url`` or ``env``).
"""
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from apiphant import test as apiphant_test
from apiphant.auth import tokens

__all__ = ['ServedProduct']

_NOT_INHERITED = ('APIPHANT_DATABASE_URL', 'APIPHANT_AUTH_KEYS', 'APIPHANT_AUTH_KEYS_FILE')
_READY = re.compile(r'serving .* on http://(\[[^\]]+\]|[^:\s]+):(\d+)')


class ServedProduct:
    """A product served by a real ``apiphant`` process."""

    def __init__(self, product, *args, host='127.0.0.1', env=None, cwd=None, start_timeout=30):
        self.command = [sys.executable, '-m', 'apiphant', str(product), f'{host}:0', *map(str, args)]
        inherited = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        self.env = {'APIPHANT_AUTH_KEYS': f'test:{secrets.token_urlsafe(32)}', **inherited, **(env or {})}
        self.audience = os.path.basename(os.path.normpath(str(product))).partition('.')[0]
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

    def token(self, id=1, roles=(), *, minutes=15, kind='user', extra=None):
        """An access token for ``id`` with ``roles``, as the product's
        ``Accounts`` (or ``Tokens``) would give after a login."""
        ring = tokens.Keys.parse(self.env.get('APIPHANT_AUTH_KEYS', ''))
        return tokens.mint(id, roles, minutes=minutes, audience=self.audience, kind=kind, extra=extra, ring=ring)

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
    parser.addini('apiphant_test_database_url', 'the database apiphant_server serves on instead of a '
                  'fresh SQLite file (APIPHANT_TEST_DATABASE_URL too): its name must say test; in '
                  'PostgreSQL the session works in a schema of its own, dropped after')


def _names_a_database(args, env):
    return 'APIPHANT_DATABASE_URL' in (env or {}) or any(
        str(arg).split('=')[0] in ('--database-url', '--database') for arg in args)


@pytest.fixture
def apiphant_serve(tmp_path_factory):
    """Start servers of products for one test; all are stopped after it. A
    server given no database keeps its rows in a fresh SQLite file."""
    started = []

    def serve(product, *args, **options):
        if not _names_a_database(args, options.get('env')):
            fresh = tmp_path_factory.mktemp('apiphant-db') / 'test.sqlite3'
            options['env'] = {**(options.get('env') or {}), 'APIPHANT_DATABASE_URL': f'sqlite:///{fresh}'}
        server = ServedProduct(product, *args, **options).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


@pytest.fixture(scope='session')
def apiphant_server(pytestconfig, tmp_path_factory):
    """The product under test, served for the whole session on a database of
    its own; ``apiphant.test.config`` points at it."""
    product = os.environ.get('APIPHANT_TEST_PRODUCT') or pytestconfig.getini('apiphant_product')
    if not product:
        raise pytest.UsageError('apiphant_server needs the ini option apiphant_product '
                                '(or APIPHANT_TEST_PRODUCT): the product to serve')
    path = pytestconfig.rootpath / product
    told = os.environ.get('APIPHANT_TEST_DATABASE_URL') or pytestconfig.getini('apiphant_test_database_url')
    with _test_database(told, tmp_path_factory) as url:
        server = ServedProduct(path if path.is_dir() else product, env={'APIPHANT_DATABASE_URL': url}).start()
        saved = dict(apiphant_test.config)
        apiphant_test.config.update(host=server.host, port=server.port)
        try:
            yield server
        finally:
            apiphant_test.config.clear()
            apiphant_test.config.update(saved)
            server.stop()


@pytest.fixture
def apiphant_token(apiphant_server):
    """``apiphant_token(id, roles=(), minutes=15)``: an access token for the
    product ``apiphant_server`` serves, minted without a login round trip."""
    return apiphant_server.token


@contextlib.contextmanager
def _test_database(told, tmp_path_factory):
    """The URL of the session's database: a fresh SQLite file, or the one
    ``told`` names when its name says test (a fresh schema of it, in
    PostgreSQL, dropped after)."""
    if not told:
        yield f'sqlite:///{tmp_path_factory.mktemp("apiphant-db") / "test.sqlite3"}'
        return
    from apiphant.background.claims import database_url as libpq_url
    from apiphant.crud.storage import parse_url
    from apiphant.product import ProductError
    try:
        url = parse_url(told)
    except ProductError as error:
        raise pytest.UsageError(f'APIPHANT_TEST_DATABASE_URL: {error}') from None
    name = os.path.basename(url.database or '') if url is not None else ''
    if 'test' not in name.lower():
        raise pytest.UsageError(f'APIPHANT_TEST_DATABASE_URL names the database {name or told!r}, which does not '
                                f'look like a test database: its name must say test (e.g. myproduct_test)')
    if url.get_backend_name() == 'sqlite':
        yield told
        return
    import psycopg
    schema = f'apiphant_test_{os.getpid()}_{uuid.uuid4().hex[:8]}'
    with psycopg.connect(libpq_url(told), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE SCHEMA {schema}')
        try:
            options = url.query.get('options', '')
            options = ' '.join([options] if isinstance(options, str) else options)
            yield url.update_query_dict({'options': f'{options} -csearch_path={schema}'.strip()}).render_as_string(
                hide_password=False)
        finally:
            admin.execute(f'DROP SCHEMA {schema} CASCADE')
