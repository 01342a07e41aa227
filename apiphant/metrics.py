"""Prometheus metrics of a service's processes, served at ``GET /metrics``.

Rules:

1. Cheap: per request the daemon bumps plain ints in dicts of its one
   ``Metrics``. No lock: a process counts from its hub thread only (CRUD's
   SQLite threads report nothing), and greenlets switch only at waits, so
   ``+=`` is whole. Nothing of prometheus_client runs in the daemon.
2. A label has a bounded set of values: a route's path, never the path a
   client sent (``route="none"`` when no route matched), a status, a task.
3. Several processes, one view: with a directory (``APIPHANT_METRICS_DIR``)
   each process writes its snapshot to ``<dir>/<kind>-<pid>.json`` on
   ``tick()``, once a second, atomically (a temporary file, then
   ``os.replace``: a reader sees the old snapshot or the new one). A
   snapshot is a few KiB written to the page cache, never synced: a few
   hundred microseconds once a second (0.3 ms for 30 routes and statuses),
   too short to hold up the hub, and not worth a thread; nothing is written
   when nothing changed. ``render()`` adds every snapshot in the directory to the live
   numbers of its own process: counters and histograms of all files, those
   of processes that are gone too (so counters never go backward),
   gauges only of processes still alive. A process whose PID was used before
   moves the old file aside (``<kind>-<pid>-<n>.json``), so the counts of
   its namesake are kept and its gauges no longer count.
4. What a snapshot held when its process died is what that process counted
   up to its last tick: a process that stops should ``tick()`` once more.
5. The directory holds one file per process alive, plus one: once a minute
   a process (whichever takes the lock) folds the snapshots of processes
   gone into ``gone.json``, then deletes them. The archive names the files
   it absorbed, and a reader reads it last and drops those files, so that
   each is counted once whenever the reader comes.
"""
import bisect
import contextlib
import fcntl
import ipaddress
import logging
import math
import os
import time

import orjson

from apiphant.current import context
from apiphant.errors import Forbidden
from apiphant.limits import contains
from apiphant.routing import Route

__all__ = ['Metrics', 'PROCESS', 'route', 'reporting', 'database_wait', 'database_unavailable',
           'task_run', 'CONTENT_TYPE', 'LOOPBACK', 'REQUEST_BUCKETS', 'WAIT_BUCKETS', 'TASK_BUCKETS']

log = logging.getLogger('apiphant')

PROCESS = None  # this process's Metrics, once its command has made one
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
LOOPBACK = (ipaddress.ip_network('127.0.0.0/8'), ipaddress.ip_network('::1/128'))
PREFIX = 'apiphant_'
ARCHIVE = 'gone.json'
COMPACT_EVERY = 60  # ticks

# Upper bounds in seconds. An API answers in milliseconds; past 10 s a client has given up.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A connection or a write turn is there at once, or after others' transactions, up to database_wait.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0)

# (name, type, help) in the order they are shown.
FAMILIES = (
    ('requests_total', 'counter', 'Requests answered, by route (none: no route matched) and status.'),
    ('request_duration_seconds', 'histogram', 'Time from a request received whole to its answer made, by route.'),
    ('requests_in_flight', 'gauge', 'Requests received whole and not answered yet.'),
    ('connections_open', 'gauge', 'Client connections open.'),
    ('requests_rejected_total', 'counter', 'Requests the HTTP front refused before dispatch '
     '(framing, sizes, HTTP version), by status.'),
    ('requests_shed_total', 'counter', 'Requests answered a fast 503: the cap of requests in flight was reached.'),
    ('requests_limited_total', 'counter', 'Requests answered 429 by a rate limit.'),
    ('database_waits_total', 'counter', 'Waits for a database connection or, with SQLite, for the turn to write.'),
    ('database_wait_seconds', 'histogram', 'Time of those waits.'),
    ('database_unavailable_total', 'counter', 'Requests answered 503: the database was busy or down.'),
    ('task_runs_total', 'counter', 'Finished runs of a scheduled task, whatever their outcome, by task.'),
    ('task_failures_total', 'counter', 'Runs of a task that failed, timed out or were interrupted, by task.'),
    ('task_duration_seconds', 'histogram', 'Time of the runs of a task, by task.'),
    ('watchers_open', 'gauge', 'Watch streams (live tables) open.'),
    ('watchers_refused_total', 'counter', 'Watches refused by the limits: 503 (per process) or 429 (per client).'),
    ('watch_events_total', 'counter', 'Events of live tables sent to watchers (heartbeats not counted).'),
    ('process_start_time_seconds', 'gauge', 'Start time of each process alive, in seconds since the epoch.'),
)
_bucket = bisect.bisect_left  # the index of the first bound >= a value: its bucket
_FIRST = REQUEST_BUCKETS[0]


def _histogram(bounds):
    """A count per bucket (the last one above every bound, not cumulative), then the sum."""
    return [0] * (len(bounds) + 1) + [0.0]


class Metrics:
    """The numbers of one process: ``kind`` names what it is (``api``,
    ``background``); ``directory``, when given, is where the snapshots of
    the service's processes meet."""

    def __init__(self, kind='api', directory=None):
        if not kind.isidentifier():
            raise ValueError(f'a kind of process is a name like api, not {kind!r}')
        self.kind = kind
        self.pid = os.getpid()
        self.started = time.time()
        self.in_flight = 0
        self.connections = 0
        # (route path or None, status): _histogram(REQUEST_BUCKETS), whose counts add up to the requests
        self.requests = {}
        self.rejections = {}  # status: count
        self.shed_count = 0
        self.limited_count = 0
        self.waits = _histogram(WAIT_BUCKETS)
        self.unavailable = 0
        self.tasks = {}  # task name: [runs, failures, _histogram(TASK_BUCKETS)]
        self.watchers = 0
        self.watchers_refused = {}  # status: count
        self.watch_events = 0
        self.directory = directory or None
        self.path = None
        self._written = None
        self._failing = False
        self._ticks = 0
        if self.directory is not None:
            self.path = os.path.join(self.directory, f'{kind}-{self.pid}.json')
            try:
                os.makedirs(self.directory, exist_ok=True)
                if os.path.exists(self.path):  # a process gone before us had our PID
                    os.replace(self.path, os.path.join(self.directory, f'{kind}-{self.pid}-{time.time_ns()}.json'))
                data = orjson.dumps(self.snapshot())
                self._write(self.path, data)  # the others know of this process at once, not a second later
            except OSError as error:
                raise ValueError(f'the metrics directory {self.directory} cannot be used: {error}') from None
            self._written = data

    # What the daemon counts, on its hot path: no allocation but a new key's.

    def connection_opened(self):
        self.connections += 1

    def connection_closed(self):
        self.connections -= 1

    def request_started(self):
        self.in_flight += 1

    def request_finished(self, route, status, seconds):
        """``route``: the route's path, or None when none matched; ``status``:
        an int, or the status line (``'200 OK'``), which saves its caller an int()."""
        self.in_flight -= 1
        key = (route, status)
        try:
            histogram = self.requests[key]
        except KeyError:
            histogram = self.requests[key] = _histogram(REQUEST_BUCKETS)
        if seconds <= _FIRST:  # most answers: no search
            histogram[0] += 1
        else:
            histogram[_bucket(REQUEST_BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def rejected(self, status):
        self.rejections[status] = self.rejections.get(status, 0) + 1

    def shed(self):
        self.shed_count += 1

    def limited(self):
        self.limited_count += 1

    # What CRUD's storage and the scheduler count.

    def database_wait(self, seconds):
        waits = self.waits
        waits[_bucket(WAIT_BUCKETS, seconds)] += 1
        waits[-1] += seconds

    def database_unavailable(self):
        self.unavailable += 1

    def task_run(self, task, failed, seconds):
        counts = self.tasks.get(task)
        if counts is None:
            counts = self.tasks[task] = [0, 0, _histogram(TASK_BUCKETS)]
        counts[0] += 1
        counts[1] += bool(failed)
        histogram = counts[2]
        histogram[_bucket(TASK_BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def watch_refused(self, status):
        self.watchers_refused[status] = self.watchers_refused.get(status, 0) + 1

    # Snapshots and the exposition.

    def snapshot(self):
        """This process's numbers as plain data (what its file holds):
        ``counters`` and ``gauges`` as ``[family, labels, value]``,
        ``histograms`` as ``[family, labels, bounds, counts, sum]``, labels as
        ``[[name, value], ...]``."""
        counters, durations = [], {}
        for (route, status), counts in self.requests.items():
            route = _route(route)
            counters.append(['requests_total', [['route', route], ['status', _status(status)]], sum(counts[:-1])])
            found = durations.get(route)
            durations[route] = counts if found is None else [mine + more for mine, more in zip(found, counts)]
        counters += [['requests_rejected_total', [['status', _status(status)]], count]
                     for status, count in self.rejections.items()]
        counters += [['requests_shed_total', [], self.shed_count], ['requests_limited_total', [], self.limited_count],
                     ['database_waits_total', [], sum(self.waits[:-1])],
                     ['database_unavailable_total', [], self.unavailable], ['watch_events_total', [], self.watch_events]]
        counters += [['watchers_refused_total', [['status', str(status)]], count]
                     for status, count in self.watchers_refused.items()]
        histograms = [['request_duration_seconds', [['route', _route(route)]], REQUEST_BUCKETS, counts[:-1], counts[-1]]
                      for route, counts in durations.items()]
        histograms.append(['database_wait_seconds', [], WAIT_BUCKETS, self.waits[:-1], self.waits[-1]])
        for task, (runs, failures, counts) in self.tasks.items():
            counters += [['task_runs_total', [['task', task]], runs], ['task_failures_total', [['task', task]], failures]]
            histograms.append(['task_duration_seconds', [['task', task]], TASK_BUCKETS, counts[:-1], counts[-1]])
        gauges = [['requests_in_flight', [], self.in_flight], ['connections_open', [], self.connections],
                  ['watchers_open', [], self.watchers],
                  ['process_start_time_seconds', [['kind', self.kind], ['pid', str(self.pid)]], self.started]]
        return {'kind': self.kind, 'pid': self.pid, 'counters': counters, 'gauges': gauges, 'histograms': histograms}

    def tick(self):
        """Write this process's snapshot to the directory, if there is one
        and anything changed since the last write."""
        if self.path is None:
            return
        self._ticks += 1
        if self._ticks % COMPACT_EVERY == 0:
            self.compact()
        data = orjson.dumps(self.snapshot())
        if data == self._written:
            return
        try:
            self._write(self.path, data)
        except OSError as error:
            if not self._failing:  # once, not every second
                log.warning('metrics: cannot write %s: %s', self.path, error)
            self._failing = True
            return
        self._failing = False
        self._written = data

    def _write(self, path, data):
        temporary = os.path.join(self.directory, f'.{self.kind}-{self.pid}.tmp')
        with open(temporary, 'wb') as file:
            file.write(data)
        os.replace(temporary, path)

    def compact(self):
        """Fold the snapshots of processes gone into the archive, unless
        another process is doing it."""
        lock = os.open(os.path.join(self.directory, '.lock'), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            archive, files = self._read()
            gone = sorted(name for name, (_, alive) in files.items() if not alive)
            if not gone:
                return
            counters, histograms = {}, {}
            for snapshot in [files[name][0] for name in gone] + ([archive] if archive is not None else []):
                _add(snapshot, counters, {}, histograms, alive=False)
            self._write(os.path.join(self.directory, ARCHIVE), orjson.dumps({
                'kind': 'gone', 'pid': 0, 'absorbed': gone, 'gauges': [],
                'counters': [[family, labels, count] for (family, labels), count in counters.items()],
                'histograms': [[family, labels, *numbers] for (family, labels), numbers in histograms.items()]}))
            for name in gone:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))
        except BlockingIOError:
            pass
        except OSError as error:
            log.warning('metrics: cannot fold the snapshots of %s: %s', self.directory, error)
        finally:
            os.close(lock)  # and the lock with it

    def render(self):
        """The Prometheus text exposition (format 0.0.4) of this process and
        of the snapshots in the directory."""
        counters, gauges, histograms = {}, {}, {}
        _add(self.snapshot(), counters, gauges, histograms, alive=True)
        archive, files = self._read()
        if archive is not None:
            _add(archive, counters, gauges, histograms, alive=False)
        for snapshot, alive in files.values():
            _add(snapshot, counters, gauges, histograms, alive)
        samples = {}
        for (family, labels), value in (*counters.items(), *gauges.items()):
            samples.setdefault(family, []).append(_line(PREFIX + family, labels, value))
        for (family, labels), (bounds, counts, total) in sorted(histograms.items()):
            samples.setdefault(family, []).extend(_histogram_lines(PREFIX + family, labels, bounds, counts, total))
        lines = []
        for family, kind, text in FAMILIES:
            lines += (f'# HELP {PREFIX}{family} {text}', f'# TYPE {PREFIX}{family} {kind}')
            lines += samples.get(family, ()) if kind == 'histogram' else sorted(samples.get(family, ()))
        return ('\n'.join(lines) + '\n').encode()

    def _read(self):
        """The archive's snapshot (or None), and ``{name: (snapshot, alive)}``
        of the other files but this process's own. The archive is read last."""
        files = {}
        if self.directory is None:
            return None, files
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as error:
            log.warning('metrics: cannot read %s: %s', self.directory, error)
            return None, files
        for name in names:
            if name.startswith('.') or not name.endswith('.json') or name in (ARCHIVE, os.path.basename(self.path)):
                continue
            snapshot = self._load(name)
            if snapshot is not None:
                files[name] = snapshot, name == f'{snapshot["kind"]}-{snapshot["pid"]}.json' and _alive(snapshot['pid'])
        archive = self._load(ARCHIVE)
        for name in archive.get('absorbed', ()) if archive is not None else ():
            files.pop(name, None)
        return archive, files

    def _load(self, name):
        try:
            with open(os.path.join(self.directory, name), 'rb') as file:
                snapshot = orjson.loads(file.read())
            if not isinstance(snapshot['pid'], int) or not str(snapshot['kind']).isidentifier():
                raise ValueError('no kind or pid')
            return snapshot
        except FileNotFoundError:  # folded into the archive just now
            return None
        except (OSError, ValueError, TypeError, KeyError) as error:
            log.warning('metrics: %s is not a snapshot, skipped: %s', name, error)
            return None


def _route(route):
    return 'none' if route is None else route


def _status(status):
    return str(status)[:3]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _add(snapshot, counters, gauges, histograms, alive):
    """Add a snapshot's numbers to the sums: gauges only when its process is ``alive``."""
    for family, labels, value in snapshot['counters']:
        key = (family, tuple(map(tuple, labels)))
        counters[key] = counters.get(key, 0) + value
    if alive:
        for family, labels, value in snapshot['gauges']:
            key = (family, tuple(map(tuple, labels)))
            gauges[key] = gauges.get(key, 0) + value
    for family, labels, bounds, counts, total in snapshot['histograms']:
        key = (family, tuple(map(tuple, labels)))
        found = histograms.get(key)
        if found is None:
            histograms[key] = [tuple(bounds), list(counts), total]
        elif found[0] == tuple(bounds):  # buckets changed by an upgrade: those of the first one seen stay
            found[1] = [mine + theirs for mine, theirs in zip(found[1], counts)]
            found[2] += total


def _histogram_lines(name, labels, bounds, counts, total):
    lines = []
    cumulative = 0
    for bound, count in zip((*bounds, math.inf), counts):
        cumulative += count
        lines.append(_line(f'{name}_bucket', (*labels, ('le', _number(float(bound)))), cumulative))
    lines += (_line(f'{name}_sum', labels, total), _line(f'{name}_count', labels, cumulative))
    return lines


def _line(name, labels, value):
    if not labels:
        return f'{name} {_number(value)}'
    shown = ','.join(f'{label}="{_escape(text)}"' for label, text in labels)
    return f'{name}{{{shown}}} {_number(value)}'


def _escape(text):
    return str(text).replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _number(value):
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return 'NaN' if math.isnan(value) else repr(value)


# For modules that report through the process's Metrics when there is one.

def database_wait(seconds):
    if PROCESS is not None:
        PROCESS.database_wait(seconds)


def database_unavailable():
    if PROCESS is not None:
        PROCESS.database_unavailable()


def task_run(task, failed, seconds):
    if PROCESS is not None:
        PROCESS.task_run(task, failed, seconds)


@contextlib.contextmanager
def reporting(kind, directory):
    """For a process other than the daemon (the scheduler): with a
    directory, a ``Metrics`` as PROCESS, its snapshot written each second
    and once more at the end; without one, nothing."""
    global PROCESS
    if not directory:
        yield None
        return
    import gevent
    metrics = PROCESS = Metrics(kind, directory)

    def tick():
        while True:
            gevent.sleep(1.0)
            metrics.tick()

    ticker = gevent.spawn(tick)
    try:
        yield metrics
    finally:
        ticker.kill()
        metrics.tick()
        PROCESS = None


def route(metrics, allowed=LOOPBACK):
    """The Route of ``GET /metrics``: ``metrics.render()`` for a client in
    ``allowed`` (ipaddress networks), 403 for any other."""
    allowed = tuple(allowed)

    def metrics_page(request, start_response):
        """Prometheus metrics of the service's processes (text format 0.0.4), for clients in metrics_allow."""
        if not contains(allowed, context.client):
            raise Forbidden()
        body = metrics.render()
        start_response('200 OK', [('Content-Type', CONTENT_TYPE)])
        return [body]

    return Route(path='/metrics', version='', target='', action='metrics', function=metrics_page, module=__name__,
                 doc=metrics_page.__doc__, raw_response=True, methods=('GET',))
