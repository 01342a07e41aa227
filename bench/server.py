"""A server under load: started pinned to core 0, awaited, checked, measured, stopped."""
import json
import os
import pathlib
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CORE = 0  # wrk gets core 1
START_TIMEOUT = 20  # seconds; apiphant imports the whole product tree first
STOP_TIMEOUT = 15  # seconds; above apiphant's default 8 s shutdown timeout
ECHO_PATH = '/api/v0/echo/read'
APIPHANT = pathlib.Path(sys.executable).with_name('apiphant')  # the repo venv's CLI
EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / 'examples' / 'myproduct'


def apiphant(product, port, *options):
    """The command serving ``product`` on 127.0.0.1:``port`` without an access log."""
    return [APIPHANT, product, f'127.0.0.1:{port}', '--access-log', 'off', *options]


def clean_env():
    """This environment without APIPHANT_* settings, which would quietly change what is measured."""
    return {key: value for key, value in os.environ.items() if not key.startswith('APIPHANT_')}


def raise_fd_limit(needed):
    """Lift this process's soft RLIMIT_NOFILE to the hard limit, for it and
    what it starts (servers, wrk, helpers); RuntimeError if that is below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RuntimeError(f'{needed} file descriptors are needed, the hard limit is {hard}: '
                           f'raise it (ulimit -Hn, /etc/security/limits.conf) and rerun')
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Server:
    """`with Server(argv, port) as server:` runs argv until the block ends, however it ends."""

    def __init__(self, argv, port, env=None, start_timeout=START_TIMEOUT):
        self.argv = argv
        self.port = port
        self.env = env
        self.start_timeout = start_timeout
        self.started = None  # time.monotonic() when it was started
        self.returncode = None
        self._log = tempfile.TemporaryFile()
        self._process = None

    def __enter__(self):
        # taskset execs the server, so the PID we signal and measure is the server's.
        # Its own session keeps a Ctrl-C for run.py from reaching it before the SIGTERM.
        self.started = time.monotonic()
        self._process = subprocess.Popen(
            ['taskset', '-c', str(CORE), *self.argv], stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, env=self.env, start_new_session=True)
        try:
            self._wait_accepting()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        process = self._process
        children = self._descendants() if process.poll() is None else []
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        # A server with worker processes (granian) stops them itself on SIGTERM;
        # any it left behind, known by PID from before the signal, go now.
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.returncode = process.returncode
        self._log.close()

    @property
    def pid(self):
        return self._process.pid

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}'

    def check(self, path):
        """POST {"hello": "world"} once; the answer must be a 200 JSON object echoing it."""
        request = urllib.request.Request(
            self.url + path, data=b'{"hello": "world"}', method='POST',
            headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, response.read()
        answer = json.loads(body)
        if status != 200 or not isinstance(answer, dict) or answer.get('hello') != 'world':
            raise RuntimeError(f'{self.argv} answered {status} {body!r}\n{self.log()}')

    def rss(self):
        """Resident memory of the server process and its worker processes, in bytes."""
        total = 0
        for pid in [self.pid, *self._descendants()]:
            try:
                with open(f'/proc/{pid}/status') as status:
                    total += next(int(line.split()[1]) * 1024 for line in status if line.startswith('VmRSS:'))
            except (OSError, StopIteration):
                if pid == self.pid:
                    raise RuntimeError(f'no VmRSS for PID {self.pid}') from None
        return total

    def cpu(self):
        """CPU time the server process and its worker processes have used so far
        (user + system), in seconds: per request, a figure the neighbours on a
        shared machine disturb less than req/s."""
        total = 0
        for pid in [self.pid, *self._descendants()]:
            try:
                fields = _stat(pid)
            except OSError:  # a worker that just ended
                if pid == self.pid:
                    raise
                continue
            total += fields[11] + fields[12]
        return total / os.sysconf('SC_CLK_TCK')

    def _descendants(self):
        """PIDs of the processes the server started (granian's workers), at any depth."""
        parents = {}
        for entry in os.listdir('/proc'):
            if entry.isdigit():
                try:
                    parents.setdefault(_stat(int(entry))[1], []).append(int(entry))
                except OSError:
                    pass
        found, pending = [], [self.pid]
        while pending:
            children = parents.get(pending.pop(), [])
            found += children
            pending += children
        return found

    def log(self):
        self._log.seek(0)
        return self._log.read().decode(errors='replace')[-4000:]

    def _wait_accepting(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f'{self.argv} exited with {self._process.returncode}\n{self.log()}')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f'{self.argv} did not accept on port {self.port} '
                           f'within {self.start_timeout} s\n{self.log()}')


def _stat(pid):
    """The numeric fields of /proc/PID/stat after the command name: [0] state, [1] ppid,
    [11] utime, [12] stime (clock ticks)."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rpartition(')')[2].split()
    return [fields[0], *map(int, fields[1:])]
