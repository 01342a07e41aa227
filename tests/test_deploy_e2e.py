"""The deploy, end to end, on this machine, as root: a product exactly as
``apiphant new`` made it (apiphant from its own deploy/wheels/), deployed by
its ``deploy/deploy.sh`` with HTTPS (a self-signed certificate made here) on
spare loopback ports; echo and a CRUD write through nginx; ``--dry-run``
afterwards (nothing to do, nothing done); ``reload.sh`` and a ``kill -9`` of
an API process under a client loop (no request may fail); ``deploy.sh`` again
(it changes nothing and keeps serving); the same product on PostgreSQL with a
scheduled task; and ``uninstall.sh``: the files, configs, secrets and user
that deploy.sh touches are then as they were, and supervisord and nginx run or
not as before. A second test runs the generated README's first command in a
fresh directory and gets echo served.

It runs where APIPHANT_REQUIRE_SERVICES=1 (CI) and is skipped elsewhere: it
installs Debian packages, starts system daemons and creates a user. It cleans
up after itself when it fails: uninstall.sh, then the processes it started
and the files it created.
"""
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import require_services, skip_or_fail
from test_deploy import NGINX_PID, SUPERVISORD_PID, debian_packages, new_product, running, snapshot

pytestmark = pytest.mark.skipif(not require_services(), reason='deploys to this machine as root: runs with '
                                'APIPHANT_REQUIRE_SERVICES=1 (CI), which lets it install nginx and supervisor')

POSTGRESQL = 'postgresql://postgres@127.0.0.1:5432/test'


def free_ports(count, start=20000, stop=30000):
    """``count`` consecutive free loopback ports, below the ephemeral range."""
    for _ in range(200):
        first = start + secrets.randbelow(stop - start - count)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(('127.0.0.1', port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError('no free loopback ports')


def listening(port):
    with socket.socket() as sock:
        return sock.connect_ex(('127.0.0.1', port)) == 0


def run(script, env, *args, timeout=300):
    started = time.monotonic()
    result = subprocess.run([str(script), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=timeout)
    took = time.monotonic() - started
    print(f'--- {script.name} {" ".join(args)}: exit {result.returncode} in {took:.1f} s\n'
          f'{result.stdout}{result.stderr}')
    assert result.returncode == 0, f'{script.name} failed:\n{result.stdout}{result.stderr}'
    return result.stdout + result.stderr, took


class ClientLoop:
    """POST through nginx in a thread until stopped (bounded in count and
    time), counting answers and failures: echo by default (the answer has the
    request's ``n``), or ``body`` with the answer ``expected``."""

    def __init__(self, url, verify=True, body=None, expected=None, limit=20000, seconds=120):
        self.url, self.verify, self.limit, self.seconds = url, verify, limit, seconds
        self.body, self.expected = body, expected
        self.count, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        deadline = time.monotonic() + self.seconds
        with requests.Session() as session:
            session.trust_env = False  # 127.0.0.1 only, never through a proxy
            session.verify = self.verify
            while not self._stop.is_set() and self.count < self.limit and time.monotonic() < deadline:
                self.count += 1
                body = self.body or {'n': self.count}
                try:
                    answer = session.post(self.url, json=body, timeout=30)
                    if answer.status_code != 200 or answer.json() != (self.expected or answer.json() | body):
                        self.failures.append(f'{answer.status_code} {answer.text[:200]}')
                except (requests.RequestException, ValueError) as error:
                    self.failures.append(repr(error))

    def __enter__(self):
        self._thread.start()
        time.sleep(0.5)  # traffic flows before the script under test starts
        return self

    def __exit__(self, *exc_info):
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(60)


def eventually(condition, seconds=5):
    """nginx writes its access log line just after the answer."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def api_pids(name):
    status = subprocess.run(['supervisorctl', 'status'], capture_output=True, text=True).stdout
    return re.findall(rf'^({name}-\S+)\s+RUNNING\s+pid (\d+)', status, re.M)


def cleanup(name, product, env, daemons_before):
    """Whatever a failed test left: uninstall.sh first, then by hand, and
    only what the test made (the product's processes, the daemons that were
    not running before it, the product's files and user)."""
    for script in (Path('/opt') / name / 'deploy' / 'uninstall.sh', product / 'deploy' / 'uninstall.sh'):
        if script.exists():
            subprocess.run([str(script), '--yes'], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120)
            break
    for pid in os.listdir('/proc'):
        try:
            if pid.isdigit() and f'/opt/{name}/'.encode() in Path(f'/proc/{pid}/cmdline').read_bytes():
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    for daemon, pidfile in (('nginx', NGINX_PID), ('supervisord', SUPERVISORD_PID)):
        pid = running(pidfile)
        if pid and not daemons_before[daemon]:
            os.kill(pid, signal.SIGTERM)
    for path in (f'/etc/supervisor/conf.d/{name}.conf', f'/etc/nginx/sites-enabled/{name}',
                 f'/etc/nginx/sites-available/{name}', f'/etc/logrotate.d/nginx-{name}'):
        if os.path.lexists(path):
            os.remove(path)
    shutil.rmtree(f'/opt/{name}', ignore_errors=True)
    shutil.rmtree(f'/etc/{name}', ignore_errors=True)
    if subprocess.run(['getent', 'passwd', name], capture_output=True).returncode == 0:
        subprocess.run(['userdel', name], capture_output=True)
    if subprocess.run(['getent', 'group', name], capture_output=True).returncode == 0:
        subprocess.run(['groupdel', name], capture_output=True)




def self_signed(directory):
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    certificate, key = directory / 'tls.pem', directory / 'tls.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', str(key), '-out', str(certificate)],
                   check=True, capture_output=True)
    return certificate, key


def postgresql_schema():
    """A schema of its own in the test database, for this run's tables; the
    URL whose search_path puts them there. Skipped (or failed, in CI)
    without PostgreSQL."""
    try:
        import psycopg
        connection = psycopg.connect(POSTGRESQL, autocommit=True, connect_timeout=5)
    except Exception as error:  # noqa: BLE001 - any reason to have no database is a skip here
        skip_or_fail(f'no PostgreSQL at {POSTGRESQL}: {error}')
    schema = f'e2e_{secrets.token_hex(4)}'
    connection.execute(f'CREATE SCHEMA {schema}')
    return connection, schema, f'{POSTGRESQL}?options=-csearch_path%3D{schema}'


def replaced(name, process, pid, seconds=30):
    """Until supervisor runs ``process`` again, under another pid."""
    return eventually(lambda: any(p == process and int(q) != pid for p, q in api_pids(name)), seconds)


def test_deploy_https_crud_reload_kill_postgresql_uninstall(tmp_path):
    if os.geteuid() != 0:
        skip_or_fail('deploy.sh runs as root')
    debian_packages('nginx', 'supervisor', 'logrotate')
    name = f'e2eproduct_{secrets.token_hex(3)}'
    product = new_product(name, tmp_path / name)
    certificate, key = self_signed(tmp_path)
    api_port, listen_port, tls_port = free_ports(2), free_ports(1), free_ports(1)
    env = {key_: value for key_, value in os.environ.items() if key_ != 'APIPHANT_SOURCE'}
    env.update(API_PROCESSES='2', API_PORT=str(api_port), LISTEN=f'127.0.0.1:{listen_port}',
               LISTEN_TLS=f'127.0.0.1:{tls_port}', TLS_CERTIFICATE=str(certificate), TLS_KEY=str(key))
    deploy = product / 'deploy'
    base = f'https://127.0.0.1:{tls_port}'
    url = f'{base}/api/v0/echo/read'
    https = requests.Session()
    https.trust_env, https.verify = False, str(certificate)
    before = snapshot(name)
    timings = {}
    database = None
    try:
        output, timings['first deploy'] = run(deploy / 'deploy.sh', env)
        assert f'quick-test.sh: POST {url} {{"hello": "world"}} -> 200' in output
        assert f'HTTPS on 127.0.0.1:{tls_port} with {certificate}' in output
        answer = https.post(url, json={'hello': 'world'}, headers={'X-Request-Id': 'e2e-1'})
        assert (answer.status_code, answer.json()) == (200, {'hello': 'world', 'server': name})
        assert answer.headers['X-Request-Id'] == 'e2e-1'
        assert answer.headers['Strict-Transport-Security'] == 'max-age=63072000'
        assert eventually(lambda: 'e2e-1' in (Path('/opt') / name / 'log' / 'nginx-access.log').read_text())
        plain = requests.post(f'http://127.0.0.1:{listen_port}/api/v0/echo/read', json={}, allow_redirects=False)
        assert (plain.status_code, plain.headers['Location']) == (301, url)
        assert https.get(f'{base}/metrics').status_code == 404
        checked, _ = run(deploy / 'quick-test.sh', env, '-k', base)  # any URL, as a client elsewhere would
        assert checked == f'quick-test.sh: POST {url} {{"hello": "world"}} -> 200 {{"hello":"world","server":"{name}"}}\n'
        untrusted = subprocess.run([str(deploy / 'quick-test.sh'), base], capture_output=True, text=True, timeout=60)
        assert untrusted.returncode == 1 and 'the certificate is not trusted here (--insecure for a self-signed ' \
            'one)' in untrusted.stderr, untrusted.stderr
        too_large = https.post(url, data=b'{}' + b' ' * (1 << 20))
        assert (too_large.status_code, too_large.json()) == (413, {'error': '413 Content Too Large'})

        note = https.post(f'{base}/api/v0/notes/create', json={'text': 'through nginx'})
        assert note.status_code == 200, note.text
        assert https.post(f'{base}/api/v0/notes/read', json={'id': note.json()['id']}).json() == note.json()
        assert (Path('/opt') / name / 'var' / f'{name}.sqlite3').stat().st_uid == \
            int(subprocess.run(['id', '-u', name], capture_output=True, text=True, check=True).stdout)

        # The secret: made once, root's alone, in the programs' environment
        # only: not readable by the product's user, on no command line, in no log.
        secrets_file = Path('/etc') / name / 'secrets.env'
        info = secrets_file.stat()
        assert (oct(info.st_mode & 0o777), info.st_uid, info.st_gid) == ('0o600', 0, 0)
        key_value = re.search(r'(?m)^APIPHANT_AUTH_KEYS=k1:([0-9a-f]{64})$', secrets_file.read_text())[1]
        assert subprocess.run(['runuser', '-u', name, '--', 'cat', str(secrets_file)],
                              capture_output=True).returncode != 0
        pids = api_pids(name)
        for _, pid in pids:
            assert f'APIPHANT_AUTH_KEYS=k1:{key_value}'.encode() in Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
            assert Path(f'/proc/{pid}').stat().st_uid != 0
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                assert key_value.encode() not in Path(f'/proc/{pid}/cmdline').read_bytes()
            except OSError:
                pass
        for log in (Path('/opt') / name / 'log').iterdir():
            assert key_value not in log.read_text(errors='replace'), log
        assert key_value not in output

        mid = snapshot(name)
        output, _ = run(deploy / 'deploy.sh', env, '--dry-run')
        assert output.splitlines()[-1] == 'deploy.sh: dry run: nothing would change'
        assert snapshot(name) == mid

        with ClientLoop(url, str(certificate)) as loop:
            output, timings['reload'] = run(deploy / 'reload.sh', env)
        print(f'reload: {loop.count} requests, {len(loop.failures)} failed')
        assert loop.failures == []
        assert loop.count >= 50
        assert output.count('answers GET /health') == 2

        # kill -9 in the middle of the traffic: the reading action that the
        # dead process had taken is replayed on the other one by nginx.
        process, pid = api_pids(name)[0]
        with ClientLoop(url, str(certificate)) as loop:
            os.kill(int(pid), signal.SIGKILL)
            assert replaced(name, process, int(pid))
            time.sleep(1)
        errors = (Path('/opt') / name / 'log' / 'nginx-error.log').read_text()
        replayed = len(re.findall(r'prematurely closed|reset by peer', errors))
        print(f'kill -9: {loop.count} requests, {len(loop.failures)} failed, {replayed} cut off and replayed')
        assert loop.failures == []
        assert loop.count >= 50

        pids = api_pids(name)
        with ClientLoop(url, str(certificate)) as loop:
            output, timings['second deploy'] = run(deploy / 'deploy.sh', env)
        print(f'deploy again: {loop.count} requests, {len(loop.failures)} failed')
        assert loop.failures == []
        assert api_pids(name) == pids  # nothing restarted ...
        assert output.count('deploy.sh:     unchanged\n') == 3  # ... nothing rewritten
        assert 'is up to date' in output and 'its configuration unchanged' in output
        assert ': updated' not in output and 'restarting' not in output and 'kept (root' in output
        assert secrets_file.read_text().count(key_value) == 1

        # The same product on PostgreSQL, now with a scheduled task (the
        # example, uncommented): the API and the scheduler share the database.
        database, schema, database_url = postgresql_schema()
        background = product / name / 'api' / 'background.py'
        background.write_text(re.sub(r'(?m)^# ?', '', background.read_text()))
        env['DATABASE_URL'] = database_url
        output, timings['deploy on PostgreSQL'] = run(deploy / 'deploy.sh', env)
        assert '[postgresql] -r requirements.txt' in output and 'report_alive' in output
        note = https.post(f'{base}/api/v0/notes/create', json={'text': 'in PostgreSQL'})
        assert note.status_code == 200, note.text
        rows = database.execute(f'SELECT id, text FROM {schema}.notes').fetchall()
        assert rows == [(note.json()['id'], 'in PostgreSQL')]
        assert {process for process, _ in api_pids(name)} == {
            f'{name}-api:{api_port}', f'{name}-api:{api_port + 1}', f'{name}-background'}
        conf = Path(f'/etc/supervisor/conf.d/{name}.conf').read_text()
        assert conf.count(f'APIPHANT_DATABASE_URL="{database_url.replace("%", "%%")}"') == 2
        # The scheduler prepares its claims where the API keeps its rows.
        assert eventually(lambda: database.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'apiphant_task_claims'", (schema,)).fetchone()[0] == 1, 30)

        # Reload and kill -9 again, now with every request reading PostgreSQL.
        read = dict(url=f'{base}/api/v0/notes/read', verify=str(certificate), body={'id': note.json()['id']},
                    expected=note.json())
        with ClientLoop(**read) as loop:
            _, timings['reload on PostgreSQL'] = run(deploy / 'reload.sh', env)
        print(f'reload on PostgreSQL: {loop.count} requests, {len(loop.failures)} failed')
        assert loop.failures == [] and loop.count >= 50
        process, pid = api_pids(name)[0]
        with ClientLoop(**read) as loop:
            os.kill(int(pid), signal.SIGKILL)
            assert replaced(name, process, int(pid))
            time.sleep(1)
        print(f'kill -9 on PostgreSQL: {loop.count} requests, {len(loop.failures)} failed')
        assert loop.failures == [] and loop.count >= 50

        subprocess.run(['supervisorctl', 'stop', f'{name}-api:*'], check=True, capture_output=True)
        down = https.post(url, json={}, headers={'X-Request-Id': 'e2e-2'})
        assert (down.status_code, down.json()) == (502, {'error': '502 Bad Gateway'})
        assert down.headers['X-Request-Id'] == 'e2e-2'

        output, timings['uninstall'] = run(deploy / 'uninstall.sh', env, '--yes')
        assert snapshot(name) == before
        assert not any(listening(port) for port in (api_port, api_port + 1, listen_port, tls_port))
    finally:
        print('timings: ' + ', '.join(f'{step} {took:.1f} s' for step, took in timings.items()))
        cleanup(name, product, env, before['daemons'])
        if database is not None:
            database.execute(f'DROP SCHEMA {schema} CASCADE')
            database.close()


def test_the_readme_first_command_serves_echo(tmp_path):
    """The generated README's first command, run as written (but for the
    port) in a fresh directory with python3 from PATH: apiphant from the
    product's wheel, the product's tests, then the server."""
    product = new_product('readme_shop', tmp_path / 'readme_shop')
    readme = (product / 'README.rst').read_text()
    command = next(line.strip()[2:] for line in readme.splitlines() if line.strip().startswith('$ '))
    port = free_ports(1)
    assert command.count('127.0.0.1:8001') == 1
    env = {'PATH': os.environ['PATH'], 'HOME': os.environ.get('HOME', '/root'), 'LANG': 'C.UTF-8'}
    started = time.monotonic()
    process = subprocess.Popen(['bash', '-c', command.replace('127.0.0.1:8001', f'127.0.0.1:{port}')], cwd=product,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        assert eventually(lambda: listening(port) or process.poll() is not None, 600), ''.join(lines)
        assert process.poll() is None, ''.join(lines)
        print(f'README first command: serving after {time.monotonic() - started:.1f} s')
        answer = requests.post(f'http://127.0.0.1:{port}/api/v0/echo/read', json={'hello': 'world'})
        assert (answer.status_code, answer.json()) == (200, {'hello': 'world', 'server': 'readme_shop'})
        assert '5 passed' in ''.join(lines)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        reader.join(10)
        process.stdout.close()
