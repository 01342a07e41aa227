"""The deploy, end to end, on this machine, as root: ``apiphant new`` a
product, run its ``deploy/deploy.sh`` (nginx on a spare loopback port, the
local apiphant in the product's virtualenv), POST echo through nginx, run
``reload.sh`` under a client loop (no request may fail), ``deploy.sh``
again (it changes nothing and keeps serving), and ``uninstall.sh``: the
files, configs and user that deploy.sh touches are then as they were, and
supervisord and nginx run or not as before.

It runs where APIPHANT_REQUIRE_SERVICES=1 (CI) and is skipped elsewhere: it
installs Debian packages, starts system daemons and creates a user. It cleans
up after itself when it fails: uninstall.sh, then the processes it started
and the files it created.
"""
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT, require_services, skip_or_fail
from test_deploy import debian_packages, new_product

pytestmark = pytest.mark.skipif(not require_services(), reason='deploys to this machine as root: runs with '
                                'APIPHANT_REQUIRE_SERVICES=1 (CI), which lets it install nginx and supervisor')

NGINX_PID = Path('/run/nginx.pid')
SUPERVISORD_PID = Path('/run/supervisord.pid')


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


def running(pidfile):
    """The pid in ``pidfile`` when that process is alive, else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def snapshot(name):
    """What deploy.sh touches: the trees it writes into, the product's user
    and group, /opt's entries and the running daemons."""
    state = {'/opt': sorted(os.listdir('/opt'))}
    for root in (Path('/opt') / name, Path('/etc/nginx'), Path('/etc/supervisor'), Path('/etc/logrotate.d')):
        paths = [root, *root.rglob('*')] if root.exists() else []
        for path in paths:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                content = 'link ' + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = 'directory'
            state[str(path)] = (stat.filemode(info.st_mode), info.st_uid, info.st_gid, content)
    for database in ('/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow'):
        state[database] = [line for line in Path(database).read_text().splitlines()
                           if line.split(':')[0] == name]
    state['daemons'] = {'nginx': running(NGINX_PID), 'supervisord': running(SUPERVISORD_PID)}
    return state


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
    """POST echo through nginx in a thread until stopped (bounded in count and
    time), counting answers and failures."""

    def __init__(self, url, limit=20000, seconds=120):
        self.url, self.limit, self.seconds = url, limit, seconds
        self.count, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        deadline = time.monotonic() + self.seconds
        with requests.Session() as session:
            session.trust_env = False  # 127.0.0.1 only, never through a proxy
            while not self._stop.is_set() and self.count < self.limit and time.monotonic() < deadline:
                self.count += 1
                try:
                    answer = session.post(self.url, json={'n': self.count}, timeout=30)
                    if answer.status_code != 200 or answer.json().get('n') != self.count:
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


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """This checkout of apiphant, built once into a wheel: the product's
    virtualenv gets the local apiphant, from files that do not change under
    the test."""
    directory = tmp_path_factory.mktemp('wheel')
    result = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--use-pep517',
                             '-w', str(directory), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return next(directory.glob('apiphant-*.whl'))


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
    if subprocess.run(['getent', 'passwd', name], capture_output=True).returncode == 0:
        subprocess.run(['userdel', name], capture_output=True)
    if subprocess.run(['getent', 'group', name], capture_output=True).returncode == 0:
        subprocess.run(['groupdel', name], capture_output=True)


def test_deploy_reload_redeploy_uninstall(tmp_path, wheel):
    if os.geteuid() != 0:
        skip_or_fail('deploy.sh runs as root')
    debian_packages('nginx', 'supervisor', 'logrotate')
    name = f'e2eproduct_{secrets.token_hex(3)}'
    product = new_product(name, tmp_path / name)
    # A task for the scheduler: the example, uncommented.
    background = product / name / 'api' / 'background.py'
    background.write_text(re.sub(r'(?m)^# ?', '', background.read_text()))
    api_port, listen_port = free_ports(2), free_ports(1)
    env = {**os.environ, 'APIPHANT_SOURCE': str(wheel), 'API_PROCESSES': '2', 'API_PORT': str(api_port),
           'LISTEN': f'127.0.0.1:{listen_port}'}
    deploy = product / 'deploy'
    url = f'http://127.0.0.1:{listen_port}/api/v0/echo/read'
    before = snapshot(name)
    try:
        output, took = run(deploy / 'deploy.sh', env)
        print(f'deploy: {took:.1f} s')
        assert f'quick-test.sh: POST {url} {{"hello": "world"}} -> 200' in output
        answer = requests.post(url, json={'hello': 'world'}, headers={'X-Request-Id': 'e2e-1'})
        assert (answer.status_code, answer.json()) == (200, {'hello': 'world', 'server': name})
        assert answer.headers['X-Request-Id'] == 'e2e-1'
        assert eventually(lambda: 'e2e-1' in (Path('/opt') / name / 'log' / 'nginx-access.log').read_text())
        too_large = requests.post(url, data=b'{}' + b' ' * (1 << 20))
        assert (too_large.status_code, too_large.json()) == (413, {'error': '413 Content Too Large'})
        assert {process for process, _ in api_pids(name)} == {
            f'{name}-api:{api_port}', f'{name}-api:{api_port + 1}', f'{name}-background'}

        with ClientLoop(url) as loop:
            output, took = run(deploy / 'reload.sh', env)
        print(f'reload: {took:.1f} s, {loop.count} requests, {len(loop.failures)} failed')
        assert loop.failures == []
        assert loop.count >= 50
        assert output.count('answers GET /health') == 2

        pids = api_pids(name)
        with ClientLoop(url) as loop:
            output, took = run(deploy / 'deploy.sh', env)
        print(f'deploy again: {took:.1f} s, {loop.count} requests, {len(loop.failures)} failed')
        assert loop.failures == []
        assert api_pids(name) == pids  # nothing restarted ...
        assert output.count('deploy.sh:     unchanged\n') == 3  # ... nothing rewritten
        assert 'is up to date' in output and 'its configuration unchanged' in output
        assert 'updated' not in output and 'restarting' not in output

        subprocess.run(['supervisorctl', 'stop', f'{name}-api:*'], check=True, capture_output=True)
        down = requests.post(url, json={}, headers={'X-Request-Id': 'e2e-2'})
        assert (down.status_code, down.json()) == (502, {'error': '502 Bad Gateway'})
        assert down.headers['X-Request-Id'] == 'e2e-2'

        output, took = run(deploy / 'uninstall.sh', env, '--yes')
        print(f'uninstall: {took:.1f} s')
        assert snapshot(name) == before
        assert not any(listening(port) for port in (api_port, api_port + 1, listen_port))
    finally:
        cleanup(name, product, env, before['daemons'])
