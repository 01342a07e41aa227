"""A server under load: started pinned to core 0, awaited, checked, measured, stopped."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

CORE = 0  # wrk gets core 1
START_TIMEOUT = 20  # seconds; apiphant imports the whole product tree first
STOP_TIMEOUT = 15  # seconds; above apiphant's default 8 s shutdown timeout


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Server:
    """`with Server(argv, port) as server:` runs argv until the block ends, however it ends."""

    def __init__(self, argv, port, env=None):
        self.argv = argv
        self.port = port
        self.env = env
        self.returncode = None
        self._log = tempfile.TemporaryFile()
        self._process = None

    def __enter__(self):
        # taskset execs the server, so the PID we signal and measure is the server's.
        # Its own session keeps a Ctrl-C for run.py from reaching it before the SIGTERM.
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
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.returncode = process.returncode
        self._log.close()

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
        """Resident memory of the server process, in bytes."""
        with open(f'/proc/{self._process.pid}/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f'no VmRSS for PID {self._process.pid}')

    def log(self):
        self._log.seek(0)
        return self._log.read().decode(errors='replace')[-4000:]

    def _wait_accepting(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f'{self.argv} exited with {self._process.returncode}\n{self.log()}')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f'{self.argv} did not accept on port {self.port} '
                           f'within {START_TIMEOUT} s\n{self.log()}')
