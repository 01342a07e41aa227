"""Several processes serving one port, watched by a parent.

The parent imports nothing of the product. Each worker is a fresh
``python -m apiphant`` process that inherits the listening socket and imports
the product itself, so a replaced worker runs the code now on disk: SIGHUP
and ``--reload`` replace the workers one by one, each new one answering
before the old one drains. Each worker writes ``r`` on its pipe once it
serves and ``.`` each second after (the reaper's tick): a worker whose hub is
stuck in CPU longer than ``stuck_timeout`` stops beating and is killed, with
SIGABRT first, so that faulthandler writes the stack it was stuck in to its
log (as gunicorn does), then SIGKILL if it is still there.
"""
import itertools
import logging
import os
import signal
import subprocess
import sys
import time

import gevent
import gevent.event
import gevent.os

__all__ = ['supervise', 'worker_fds', 'WORKER_FDS']

log = logging.getLogger('apiphant')

WORKER_FDS = 'APIPHANT_WORKER_FDS'  # "listening fd,pipe fd" in a worker's environment
START_TIMEOUT = 60.0
ABORT_WAIT = 2.0  # seconds a stuck worker has to write its stack after SIGABRT


def worker_fds():
    """(listening socket fd, heartbeat pipe fd) when this process is a worker."""
    value = os.environ.get(WORKER_FDS)
    if not value:
        return None
    listen_fd, pipe_fd = map(int, value.split(','))
    return listen_fd, pipe_fd


class Worker:
    def __init__(self, argv, listener, number):
        self.number = number
        read_fd, write_fd = os.pipe()
        env = {**os.environ, WORKER_FDS: f'{listener.fileno()},{write_fd}'}
        self.process = subprocess.Popen([sys.executable, '-m', 'apiphant', *argv], env=env,
                                        pass_fds=(listener.fileno(), write_fd), stdin=subprocess.DEVNULL)
        os.close(write_fd)
        self.ready = gevent.event.Event()
        self.beat = time.monotonic()
        self.stopping = False
        self._reader = gevent.spawn(self._read, read_fd)

    @property
    def pid(self):
        return self.process.pid

    def _read(self, fd):
        gevent.os.make_nonblocking(fd)
        try:
            while True:
                data = gevent.os.nb_read(fd, 512)
                if not data:
                    return
                self.beat = time.monotonic()
                if b'r' in data:
                    self.ready.set()
        finally:
            os.close(fd)
            self.ready.set()  # wakes whoever waits for a worker that died first

    def alive(self):
        return self.process.poll() is None

    def signal(self, sig):
        if self.alive():
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass

    def abort(self):
        """SIGABRT (faulthandler writes the stack), SIGKILL if it outlives ABORT_WAIT."""
        self.signal(signal.SIGABRT)
        try:
            self.process.wait(ABORT_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout):
        """SIGTERM (the worker drains), SIGKILL after ``timeout``; the exit code."""
        self.stopping = True
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning('worker %d (pid %d) still running after %ss: killed', self.number, self.pid, timeout)
            self.process.kill()
            return self.process.wait()


class Supervisor:
    def __init__(self, argv, listener, count, *, shutdown_timeout, stuck_timeout, watched=None):
        self.argv = argv
        self.listener = listener
        self.count = count
        self.shutdown_timeout = shutdown_timeout
        self.stuck_timeout = stuck_timeout
        self.watched = watched
        self.workers = []
        self.numbers = itertools.count(1)
        self.stopping = gevent.event.Event()
        self.reload = gevent.event.Event()

    def spawn(self):
        worker = Worker(self.argv, self.listener, next(self.numbers))
        log.info('worker %d started (pid %d)', worker.number, worker.pid)
        return worker

    def run(self):
        """Serve until SIGTERM; the exit code. SIGINT ends the workers at once."""
        try:
            return self._run()
        except KeyboardInterrupt:
            for worker in self.workers:
                worker.signal(signal.SIGINT)
            raise

    def _run(self):
        self.workers = [self.spawn() for _ in range(self.count)]
        for worker in self.workers:
            worker.ready.wait(START_TIMEOUT)
            if not worker.alive() or not worker.ready.is_set():
                log.error('worker %d did not start; stopping', worker.number)
                self.stop_all()
                return worker.process.returncode or 1
        gevent.signal_handler(signal.SIGTERM, self.stopping.set)
        gevent.signal_handler(signal.SIGHUP, self.reload.set)
        log.info('serving with %d workers', self.count)
        sys.stderr.flush()
        watcher = gevent.spawn(self._watch_files) if self.watched else None
        while not self.stopping.wait(0.25):
            if self.reload.is_set():
                self.reload.clear()
                self.roll()
            self.check()
        if watcher is not None:
            watcher.kill()
        log.info('SIGTERM: stopping %d workers', len(self.workers))
        self.stop_all()
        log.info('stopped')
        return 0

    def check(self):
        """Replace the workers that died or stopped beating."""
        now = time.monotonic()
        for index, worker in enumerate(self.workers):
            if worker.alive() and now - worker.beat > self.stuck_timeout:
                log.error('worker %d (pid %d) sent no heartbeat for %.0fs (stuck in CPU?): killed, '
                          'its stack follows', worker.number, worker.pid, now - worker.beat)
                worker.abort()
            if not worker.alive():
                log.error('worker %d (pid %d) exited with %s; starting another', worker.number,
                          worker.pid, worker.process.returncode)
                self.workers[index] = self.spawn()

    def roll(self):
        """Replace the workers one by one; each new one serves before its old one drains."""
        log.info('replacing %d workers one by one', len(self.workers))
        for index, old in enumerate(list(self.workers)):
            new = self.spawn()
            new.ready.wait(START_TIMEOUT)
            if not new.alive() or not new.ready.is_set():
                log.error('worker %d did not start: the old workers keep serving', new.number)
                new.stop(1)
                return
            self.workers[index] = new
            gevent.spawn(old.stop, self.shutdown_timeout + 2)
        log.info('all workers replaced')

    def stop_all(self):
        stops = [gevent.spawn(worker.stop, self.shutdown_timeout + 2) for worker in self.workers]
        gevent.joinall(stops)

    def _watch_files(self):
        """--reload: replace the workers when a .py file under the product changes."""
        seen = _mtimes(self.watched)
        while True:
            gevent.sleep(1.0)
            now = _mtimes(self.watched)
            if now != seen:
                seen = now
                log.info('a file of the product changed: reloading')
                self.reload.set()


def _mtimes(root):
    found = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if not d.startswith('.') and d != '__pycache__']
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(directory, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:
                    pass
    return found


def supervise(argv, listener, count, **options):
    """Run ``count`` workers of ``apiphant argv`` on ``listener`` until SIGTERM."""
    return Supervisor(argv, listener, count, **options).run()
