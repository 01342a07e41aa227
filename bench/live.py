"""Live tables (issue 15): what watchers cost, and how fast a change reaches them.

Usage: .venv/bin/python bench/live.py [--watchers 10000] [--rounds 3] [--duration 10] [--fanouts 5]
           [--rate 100] [--seconds 10] [--database-url postgresql://postgres@127.0.0.1:5432/test]

Each round serves bench/livebench (an echo and the watched table
``livebench_rows``, one row per group 0..99) on core 0, in a fresh database:
a SQLite file, or a PostgreSQL schema of its own (dropped after). The
watchers are held by this script's other half (``live.py --client PORT``), a
gevent process on core 1 beside wrk, which timestamps each event by the
kernel's receive time of its bytes (SO_TIMESTAMPNS), so that its own pace
does not show in the latencies. Then:

1. wrk loads the echo without watchers; ``--watchers`` open, all on
   ``{"group": 0}``; RSS before and with them; wrk again with them.
   Goals: at most 16 KiB per watcher; with them at least 0.9x the req/s.
2. ``--fanouts`` updates of group 0's row, one at a time: each reaches every
   watcher. Goal: the last delivery's p99 at most 250 ms after the commit.
3. The watchers close; 1,000 open, 10 on each group; ``--rate`` updates a
   second for ``--seconds``, each to one group's row (each watcher sees 1 %
   of them). Goal: delivery p99 at most 50 ms.

Latencies run from just before the update request is sent; beside them,
from the commit as the server's log dates it (``apiphant_changes.at``, the
server's clock when it wrote the change, just before its COMMIT: the
latency after the commit is at most that). Printed figures, never asserted.
"""
import argparse
import concurrent.futures
import contextlib
import dataclasses
import http.client
import itertools
import json
import os
import pathlib
import re
import resource
import select
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import server
import wrk

PRODUCT = pathlib.Path(__file__).resolve().with_name('livebench')
GROUPS = 100  # rows, one per group
OPEN_TIMEOUT = 180  # seconds for the client to open its watchers
SENDERS = 4  # threads sending the updates of goal 3, each on its own connection
SO_TIMESTAMPNS = 35  # Linux: recvmsg gives the kernel's receive time (struct timespec)
EVENT = re.compile(rb'id: \d+\nevent: \w+\ndata: ([^\n]*)\n\n')
MARKER = re.compile(rb'"n":(\d+)')


# The watchers' process

def client(port):
    """Hold watchers on 127.0.0.1:``port`` and answer the commands of stdin,
    one line each: ``open N GROUPS`` (N watchers, the i-th on group i %
    GROUPS; answers ``opened H failed F seconds S``), ``wait COUNT SECONDS``
    (until COUNT updates are received; ``have C``), ``report`` (a JSON line:
    the updates received since the last report as ``[n, kernel time, own
    time]``, this process's CPU seconds, how many streams the server
    ended), ``close`` (``closed``). EOF: exit."""
    import gevent
    import gevent.fileobject
    import gevent.lock
    import gevent.socket

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    received, held = [], set()
    ended = 0  # streams the server ended

    def watch(group, gate, outcome):
        nonlocal ended
        sock = None
        try:
            with gate, gevent.Timeout(30):
                sock = gevent.socket.create_connection(('127.0.0.1', port))
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                body = b'{"where":{"group":%d}}' % group
                sock.sendall(b'POST /api/v0/rows/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: '
                             b'application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
                data = b''
                while b'event: ready\n' not in data:
                    more = sock.recv(65536)
                    if not more:
                        raise ConnectionError('closed before ready')
                    data += more
                if not data.startswith(b'HTTP/1.1 200 '):
                    raise ConnectionError(data[:100])
        except BaseException:
            if sock is not None:
                sock.close()
            outcome.append(False)
            return
        held.add(sock)
        outcome.append(True)
        now = time.time()
        rest = take(data[data.index(b'event: ready\n'):], now, now)
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except OSError:  # closed by `close`
                return
            if not data:
                ended += 1
                held.discard(sock)
                sock.close()
                return
            own = kernel = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack('qq', value[:16])
                    kernel = seconds + nanoseconds * 1e-9
            rest = take(rest + data, kernel, own)

    def take(data, kernel, own):
        """Note the events whole in ``data``; what is left of it."""
        for event in EVENT.finditer(data):
            marker = MARKER.search(event[1])
            if marker:
                received.append((int(marker[1]), kernel, own))
        return data[data.rfind(b'\n\n') + 2:]  # every event, heartbeat and retry ends with it

    def open_watchers(count, groups):
        started, outcome, gate = time.monotonic(), [], gevent.lock.Semaphore(500)  # below the backlog
        for number in range(count):
            gevent.spawn(watch, number % groups, gate, outcome)
        while len(outcome) < count and time.monotonic() < started + OPEN_TIMEOUT:
            gevent.sleep(0.05)
        return f'opened {outcome.count(True)} failed {count - outcome.count(True)} ' \
               f'seconds {time.monotonic() - started:.2f}'

    def wait(count, seconds):
        deadline = time.monotonic() + seconds
        while len(received) < count and time.monotonic() < deadline:
            gevent.sleep(0.005)
        return f'have {len(received)}'

    def report():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        answer = json.dumps({'received': received[:], 'cpu': usage.ru_utime + usage.ru_stime,
                             'ended': ended})
        del received[:]
        return answer

    def close():
        for sock in list(held):
            sock.close()
        held.clear()
        gevent.sleep(0.1)  # the readers see their sockets closed
        return 'closed'

    commands = {'open': lambda count, groups: open_watchers(int(count), int(groups)),
                'wait': lambda count, seconds: wait(int(count), float(seconds)),
                'report': report, 'close': close}
    stdin = gevent.fileobject.FileObjectPosix(sys.stdin.fileno(), 'r')
    for line in stdin:
        name, *arguments = line.split()
        print(commands[name](*arguments), flush=True)


class Watchers:
    """`with Watchers(port) as watchers:` the client process on wrk's core, stopped by PID."""

    def __init__(self, port):
        self.port = port
        self._process = None

    def __enter__(self):
        self._process = subprocess.Popen(
            ['taskset', '-c', str(wrk.CORE), sys.executable, __file__, '--client', str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        return self

    def ask(self, line, timeout=30):
        self._process.stdin.write(line + '\n')
        self._process.stdin.flush()
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        answer = self._process.stdout.readline() if ready else ''
        if not answer:
            raise RuntimeError(f'the watchers gave no answer to {line!r} within {timeout} s '
                               f'(exit {self._process.poll()})')
        return answer

    def open(self, count, groups):
        _, opened, _, failed, _, seconds = self.ask(f'open {count} {groups}', OPEN_TIMEOUT + 10).split()
        return int(opened), int(failed), float(seconds)

    def wait(self, count, seconds):
        return int(self.ask(f'wait {count} {seconds}', seconds + 10).split()[1])

    def report(self):
        return json.loads(self.ask('report'))

    def close(self):
        self.ask('close')

    def __exit__(self, *exc_info):
        process = self._process
        try:
            process.stdin.close()  # EOF: it exits, its sockets close with it
        except OSError:
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()


# The database, the server, the updates

@contextlib.contextmanager
def database(postgresql, directory):
    """``(url, commits)`` of a fresh database: ``commits()`` maps each
    update's marker ``n`` to the time its change was logged (``at``)."""
    query = 'SELECT at, after FROM apiphant_changes WHERE op = \'update\''
    if postgresql is None:
        path = directory / f'live-{uuid.uuid4().hex[:8]}.sqlite3'

        def commits():
            with contextlib.closing(sqlite3.connect(path)) as connection:
                return _markers(connection.execute(query).fetchall())
        yield f'sqlite:///{path}', commits
        return
    import psycopg
    schema = f'livebench_{uuid.uuid4().hex[:8]}'
    with psycopg.connect(postgresql, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA {schema}')
        try:
            def commits():
                with admin.transaction():
                    admin.execute(f'SET LOCAL search_path TO {schema}')
                    return _markers(admin.execute(query).fetchall())
            yield f'{postgresql}?options=-csearch_path%3D{schema}', commits
        finally:
            admin.execute(f'DROP SCHEMA {schema} CASCADE')


def _markers(rows):
    return {json.loads(after)['n']: at for at, after in rows}


class Rows:
    """The watched table, one row per group, over a kept-alive connection
    for each thread that calls ``update`` (``stream`` sends from several)."""

    def __init__(self, port):
        self.port = port
        self.markers = itertools.count(1)
        self.connections, self.local = [], threading.local()
        self.ids = [self._post('create', {'group': group})['id'] for group in range(GROUPS)]

    def _post(self, action, body):
        connection = getattr(self.local, 'connection', None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
            self.connections.append(connection)
        connection.request('POST', f'/api/v0/rows/{action}', json.dumps(body), {'Content-Type': 'application/json'})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f'rows/{action} answered {response.status} {answer!r}')
        return json.loads(answer)

    def update(self, group, marker):
        """Set ``marker`` on ``group``'s row: ``(marker, sent, answered)`` (wall clock)."""
        sent = time.time()
        self._post('update', {'id': self.ids[group], 'n': marker})
        return marker, sent, time.time()

    def close(self):
        for connection in self.connections:
            connection.close()


# Measures

def schedstat(pid):
    """``(CPU, waited)``: seconds the threads of process ``pid`` ran, and
    waited runnable for a core (a neighbour had it), in nanoseconds'
    precision (/proc's schedstat; Server.cpu counts clock ticks)."""
    ran = waited = 0
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{task}/schedstat') as stat:
                running, waiting, _ = stat.read().split()
        except OSError:  # a thread that just ended
            continue
        ran += int(running)
        waited += int(waiting)
    return ran / 1e9, waited / 1e9


class Clock:
    """The server's CPU and wait from one ``mark()`` to ``read()``."""

    def __init__(self, pid):
        self.pid = pid
        self.start = (0.0, 0.0)

    def mark(self):
        self.start = schedstat(self.pid)

    def read(self):
        ran, waited = schedstat(self.pid)
        return ran - self.start[0], waited - self.start[1]

    def cpu(self):
        return schedstat(self.pid)[0]


@dataclasses.dataclass(frozen=True)
class Delivery:
    """Updates and their receipts: latencies from the send and from the logged commit."""
    expected: int
    from_send: list  # seconds, one per receipt
    from_commit: list
    lag: list  # seconds from the kernel's receipt to the client's own clock
    round_trips: list  # seconds of each update request
    server_cpu: float  # seconds over the phase
    server_waited: float  # seconds it waited for its core over the phase
    client_cpu: float
    wall: float  # seconds of the phase

    @property
    def received(self):
        return len(self.from_send)


def delivery(updates, got, commits, expected, spent, wall):
    """``updates``: ``{marker: (sent, answered)}``; ``got``: the client's
    report; ``spent``: the server's (CPU, waited) over the phase."""
    from_send, from_commit, lag = [], [], []
    for marker, kernel, own in got['received']:
        sent = updates[marker][0]
        from_send.append(kernel - sent)
        from_commit.append(kernel - commits.get(marker, sent))
        lag.append(own - kernel)
    return Delivery(expected, sorted(from_send), sorted(from_commit), sorted(lag),
                    [answered - sent for sent, answered in updates.values()], *spent, 0.0, wall)


@dataclasses.dataclass(frozen=True)
class Round:
    without: wrk.Result
    loaded: wrk.Result
    waited: tuple  # seconds the server waited for its core during each wrk run, without and with
    rss_before: int
    rss_with: int
    opened: int
    failed: int
    opening: float
    ended: int  # watchers the server ended during the round
    fanouts: list  # Delivery, one update each
    stream: Delivery  # the --rate phase
    stream_opened: int

    @property
    def per_watcher(self):
        return (self.rss_with - self.rss_before) / max(self.opened, 1)

    @property
    def ratio(self):
        return self.loaded.requests_per_second / self.without.requests_per_second


def fan_out(rows, watchers, clock, commits, count):
    before = watchers.report()  # and the client forgets what it received
    clock.mark()
    marker, sent, answered = rows.update(0, next(rows.markers))
    watchers.wait(count, 10)
    spent = clock.read()
    got = watchers.report()
    result = delivery({marker: (sent, answered)}, got, commits(), count, spent,
                      max((kernel for _, kernel, _ in got['received']), default=sent) - sent)
    return dataclasses.replace(result, client_cpu=got['cpu'] - before['cpu'])


def stream(rows, watchers, clock, commits, args):
    """``--rate`` updates a second for ``--seconds``, round robin over the
    groups, each sent at its time from one of ``SENDERS`` threads (an update
    whose answer is slow does not hold back the next ones)."""
    before = watchers.report()
    clock.mark()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(SENDERS) as senders:
        sending = []
        for number in range(int(args.rate * args.seconds)):
            pause = started + number / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sending.append(senders.submit(rows.update, number % GROUPS, next(rows.markers)))
        updates = {marker: (sent, answered) for marker, sent, answered in (f.result() for f in sending)}
    wall = time.monotonic() - started
    expected = len(updates) * args.per_group
    watchers.wait(expected, 5)
    spent = clock.read()
    got = watchers.report()
    result = delivery(updates, got, commits(), expected, spent, wall)
    return dataclasses.replace(result, client_cpu=got['cpu'] - before['cpu'])


def measure(args, env, directory):
    port = server.free_port()
    url = f'http://127.0.0.1:{port}{server.ECHO_PATH}'
    limit = str(max(20000, 2 * args.watchers))
    with database(args.database_url, directory) as (database_url, commits):
        argv = server.apiphant(PRODUCT, port, '--database-url', database_url, '--max-watchers', limit,
                               '--max-watchers-per-client', limit)
        with server.Server(argv, port, env) as running, Watchers(port) as watchers:
            running.check(server.ECHO_PATH)
            clock = Clock(running.pid)
            rows = Rows(port)

            def load():
                clock.mark()
                result = wrk.run(url, args.duration, args.connections, cpu=clock.cpu)
                return result, clock.read()[1]
            without, waited_without = load()
            rss_before = running.rss()
            opened, failed, opening = watchers.open(args.watchers, 1)
            rss_with = running.rss()
            loaded, waited_with = load()
            fanouts = []
            for _ in range(args.fanouts):
                fanouts.append(fan_out(rows, watchers, clock, commits, opened))
                time.sleep(0.3)
            watchers.close()
            stream_opened, _, _ = watchers.open(GROUPS * args.per_group, GROUPS)
            streamed = stream(rows, watchers, clock, commits, args)
            ended = watchers.report()['ended']  # over the round
            rows.close()
    return Round(without, loaded, (waited_without, waited_with), rss_before, rss_with, opened, failed, opening,
                 ended, fanouts, streamed, stream_opened)


# The report

def percentile(ordered, share):
    """The nearest-rank percentile of sorted ``ordered``; NaN when empty."""
    if not ordered:
        return float('nan')
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def ms(seconds):
    return f'{seconds * 1e3:7.1f}'


def latencies(result):
    return ' '.join(ms(percentile(figures, share)) for figures in (result.from_send, result.from_commit)
                    for share in (0.5, 0.99, 1.0))


def report(rounds, args, loads):
    def median(figure, among=rounds):
        return statistics.median(figure(r) for r in among)

    fanouts = [f for r in rounds for f in r.fanouts]
    lines = [
        f'load average (1, 5, 15 min) at the start {loads[0]}, at the end {loads[1]}',
        '',
        f'1. {args.watchers} watchers in one process (all on {{"group": 0}})',
        f'watchers opened/failed per round {", ".join(f"{r.opened}/{r.failed}" for r in rounds)}, in '
        f'{median(lambda r: r.opening):.1f} s; ended by the server during a round '
        f'{", ".join(str(r.ended) for r in rounds)}',
        f'memory: RSS {median(lambda r: r.rss_before) / 2**20:.1f} -> {median(lambda r: r.rss_with) / 2**20:.1f} '
        f'MiB, {median(lambda r: r.per_watcher) / 1024:.1f} KiB per watcher (goal <= 16; rounds '
        f'{", ".join(f"{r.per_watcher / 1024:.1f}" for r in rounds)})',
        '',
        f'{f"wrk -c{args.connections} {args.duration}s":<22}   req/s  p50 ms  p99 ms  errors  CPU us/req  waited s']
    for index, name, which in ((0, 'without watchers', lambda r: r.without),
                               (1, f'with {args.watchers} watchers', lambda r: r.loaded)):
        lines.append(f'{name:<22} {median(lambda r: which(r).requests_per_second):7.0f} '
                     f'{median(lambda r: which(r).p50) * 1e3:7.2f} {median(lambda r: which(r).p99) * 1e3:7.2f} '
                     f'{sum(which(r).errors for r in rounds):7d} {median(lambda r: which(r).cpu_per_request) * 1e6:11.1f} '
                     f'{median(lambda r: r.waited[index]):9.2f}')
    lines += [
        f'with / without        {median(lambda r: r.ratio):6.2f}x  (goal >= 0.9; rounds '
        f'{", ".join(f"{r.ratio:.2f}" for r in rounds)}); CPU per request '
        f'{median(lambda r: r.loaded.cpu_per_request / r.without.cpu_per_request):.2f}x',
        '',
        f'2. one update fanned out to every watcher, {len(fanouts)} times ({args.fanouts} a round), ms',
        '                       from the send            from the logged commit   update  server  server  client  client',
        'fan-out received     p50     p99     max       p50     p99     max    RTT ms  CPU ms  waited  CPU ms  lag p99']
    for number, f in enumerate(fanouts, 1):
        lines.append(f'{number:7d} {f.received:5d}/{f.expected:<5d}{latencies(f)} {ms(f.round_trips[0])} '
                     f'{ms(f.server_cpu)} {ms(f.server_waited)} {ms(f.client_cpu)} {ms(percentile(f.lag, 0.99))}')
    received = sum(f.received for f in fanouts)
    lines += [
        f'median {"":11}' + ' '.join(ms(statistics.median(percentile(getattr(f, which), share) for f in fanouts))
                                      for which in ('from_send', 'from_commit') for share in (0.5, 0.99, 1.0))
        + ' ' + ' '.join(ms(statistics.median(figure(f) for f in fanouts)) for figure in (
            lambda f: f.round_trips[0], lambda f: f.server_cpu, lambda f: f.server_waited, lambda f: f.client_cpu,
            lambda f: percentile(f.lag, 0.99))),
        f'goal: p99 <= 250 ms after the commit; received {received} of {sum(f.expected for f in fanouts)}; '
        f'server CPU {sum(f.server_cpu for f in fanouts) / max(received, 1) * 1e6:.1f} us per delivered event '
        '(the update request included); server waited: runnable, its core taken by a neighbour; client lag: '
        'from the kernel\'s receipt to the client reading it (not in the latencies)',
        '',
        f'3. {args.rate:g} updates/s for {args.seconds:g} s, {GROUPS * args.per_group} watchers, '
        f'{args.per_group} on each of {GROUPS} groups (each sees 1 % of the updates), ms',
        '                             from the send            from the logged commit  update RTT   server  server client',
        'round updates/s  received     p50     p99     max       p50     p99     max     p50     p99  us/upd  waited  CPU %']
    for number, r in enumerate(rounds, 1):
        s = r.stream
        trips = sorted(s.round_trips)
        lines.append(f'{number:5d} {len(trips) / s.wall:9.1f} {s.received:5d}/{s.expected:<5d}{latencies(s)} '
                     f'{ms(percentile(trips, 0.5))} {ms(percentile(trips, 0.99))} '
                     f'{s.server_cpu / max(len(trips), 1) * 1e6:7.0f} {ms(s.server_waited)} '
                     f'{s.client_cpu / s.wall * 100:6.1f}')
    lines.append(f'goal: p99 <= 50 ms; server us/upd: its CPU per update, the update request and its '
                 f'{args.per_group} deliveries; server waited: ms over the phase; client CPU: % of its core; '
                 f'watchers opened per round {", ".join(str(r.stream_opened) for r in rounds)}')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--watchers', type=int, default=10000, help='watchers of goals 1 and 2')
    parser.add_argument('--rounds', type=int, default=3, help='rounds, each on a fresh server; medians are shown')
    parser.add_argument('--duration', type=int, default=10, help='seconds of each wrk run')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    parser.add_argument('--fanouts', type=int, default=5, help='updates fanned out to every watcher, a round')
    parser.add_argument('--rate', type=float, default=100, help='updates a second of goal 3')
    parser.add_argument('--seconds', type=float, default=10, help='seconds of goal 3')
    parser.add_argument('--per-group', type=int, default=10, help='watchers on each group in goal 3')
    parser.add_argument('--database-url', help='postgresql://...: a schema of its own there, instead of SQLite')
    parser.add_argument('--client', type=int, metavar='PORT', help=argparse.SUPPRESS)  # the watchers' process
    args = parser.parse_args()
    if args.client:
        return client(args.client)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('live.py: terminated'))
    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    try:  # the server holds every watcher and wrk's connections: it inherits this limit
        server.raise_fd_limit(args.watchers + args.connections + 64)
    except RuntimeError as error:
        sys.exit(str(error))
    os.sched_setaffinity(0, {wrk.CORE})  # this script sends the updates: off the server's core
    env = server.clean_env()
    loads = [' '.join(f'{load:.2f}' for load in os.getloadavg())]
    print(f'apiphant serving bench/livebench on core {server.CORE} '
          f'({"PostgreSQL" if args.database_url else "SQLite"}); wrk, the watchers and the updates on core '
          f'{wrk.CORE}')
    rounds = []
    with tempfile.TemporaryDirectory() as directory:
        for number in range(1, args.rounds + 1):
            rounds.append(r := measure(args, env, pathlib.Path(directory)))
            worst = max(percentile(f.from_send, 0.99) for f in r.fanouts)
            print(f'round {number}/{args.rounds}: {r.without.requests_per_second:.0f} -> '
                  f'{r.loaded.requests_per_second:.0f} req/s ({r.ratio:.2f}x), {r.per_watcher / 1024:.1f} KiB '
                  f'per watcher, {r.opened} opened in {r.opening:.1f} s; fan-out p99 up to {worst * 1e3:.0f} ms; '
                  f'stream p99 {percentile(r.stream.from_send, 0.99) * 1e3:.1f} ms; load {os.getloadavg()[0]:.2f}',
                  file=sys.stderr, flush=True)
    loads.append(' '.join(f'{load:.2f}' for load in os.getloadavg()))
    print()
    print(report(rounds, args, loads))


if __name__ == '__main__':
    main()
