"""10,000 idle keep-alive connections: their memory in apiphant, and their toll on the busy ones.

Usage: .venv/bin/python bench/idle.py [--idle 10000] [--rounds 5] [--duration 10] [--connections 50]
Each round starts apiphant's echo on core 0, loads it with wrk (without idle
connections), opens the idle ones from hold.py on core 1 and loads it again
while they are held. Goals: at most 12 KiB of RSS per idle connection, and
with them at least 95 % of the throughput without. The server's CPU time per
request, which busy neighbours disturb less than req/s, is shown beside it.
"""
import argparse
import dataclasses
import os
import pathlib
import select
import shutil
import signal
import statistics
import subprocess
import sys

import server
import wrk

HOLD = pathlib.Path(__file__).resolve().with_name('hold.py')
HOLD_TIMEOUT = 180  # seconds for hold.py to open its connections


@dataclasses.dataclass(frozen=True)
class Round:
    without: wrk.Result
    loaded: wrk.Result  # with the idle connections held
    rss_before: int  # bytes, after the first wrk run
    rss_after: int  # bytes, the idle connections held
    held: int  # connections hold.py holds, each answered once
    failed: int  # connections hold.py could not open or get an answer on
    opening: float  # seconds hold.py took
    established: tuple  # server-side ESTABLISHED sockets: before and after the loaded run
    dropped: int  # held connections the server had closed by the end

    @property
    def per_connection(self):
        return (self.rss_after - self.rss_before) / max(self.held, 1)

    @property
    def ratio(self):
        return self.loaded.requests_per_second / self.without.requests_per_second


def established(pid, port):
    """ESTABLISHED TCP sockets on 127.0.0.1:port that process `pid` holds (found by inode
    in /proc/net/tcp: a client elsewhere on the machine may have that local port too)."""
    held = set()
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            held.add(os.readlink(f'/proc/{pid}/fd/{fd}'))  # 'socket:[INODE]' for a socket
        except OSError:
            pass  # closed meanwhile
    local = f'0100007F:{port:04X}'
    with open('/proc/net/tcp') as table:
        return sum(1 for fields in map(str.split, table)
                   if fields[1] == local and fields[3] == '01' and f'socket:[{fields[9]}]' in held)


class Holder:
    """`with Holder(port, n) as held:` n idle connections, opened by hold.py on wrk's core."""

    def __init__(self, port, count):
        self.port, self.count = port, count
        self._process = None

    def __enter__(self):
        self._process = subprocess.Popen(
            ['taskset', '-c', str(wrk.CORE), sys.executable, str(HOLD), str(self.port), str(self.count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, held, _, failed, _, seconds = self._line(HOLD_TIMEOUT).split()
        except BaseException:
            self.__exit__()
            raise
        self.held, self.failed, self.seconds = int(held), int(failed), float(seconds)
        return self

    def dropped(self):
        """How many held connections the server has closed; hold.py then closes them all."""
        self._process.stdin.write('report\n')
        self._process.stdin.flush()
        return int(self._line(30).split()[1])

    def __exit__(self, *exc_info):
        process = self._process
        try:
            process.stdin.close()  # EOF: hold.py reports, closes its sockets and exits
        except OSError:
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)  # its sockets close with it
            process.wait()
        process.stdout.close()

    def _line(self, timeout):
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else ''
        if not line:
            raise RuntimeError(f'hold.py gave no answer within {timeout} s (exit {self._process.poll()})')
        return line


def measure(args, env):
    port = server.free_port()
    url = f'http://127.0.0.1:{port}{server.ECHO_PATH}'
    with server.Server(server.apiphant(server.EXAMPLE, port), port, env) as running:
        running.check(server.ECHO_PATH)
        without = wrk.run(url, args.duration, args.connections, cpu=running.cpu)
        rss_before = running.rss()
        with Holder(port, args.idle) as held:
            rss_after = running.rss()
            before = established(running.pid, port)
            loaded = wrk.run(url, args.duration, args.connections, cpu=running.cpu)
            after = established(running.pid, port)
            dropped = held.dropped()
    return Round(without, loaded, rss_before, rss_after, held.held, held.failed, held.seconds,
                 (before, after), dropped)


def report(rounds, args):
    def median(figure):
        return statistics.median(figure(r) for r in rounds)

    lines = [f'idle connections: {args.idle} asked; per round held/failed '
             f'{", ".join(f"{r.held}/{r.failed}" for r in rounds)}, opened in '
             f'{median(lambda r: r.opening):.1f} s; server ESTABLISHED before/after the loaded run '
             f'{", ".join("%d/%d" % r.established for r in rounds)}; closed by the server '
             f'{", ".join(str(r.dropped) for r in rounds)}',
             f'memory: RSS {median(lambda r: r.rss_before) / 2**20:.1f} -> '
             f'{median(lambda r: r.rss_after) / 2**20:.1f} MiB, '
             f'{median(lambda r: r.per_connection) / 1024:.1f} KiB per idle connection (goal <= 12; '
             f'rounds {", ".join(f"{r.per_connection / 1024:.1f}" for r in rounds)})',
             '',
             f'{f"wrk -c{args.connections} {args.duration}s":<20}   req/s  p50 ms  p99 ms  p99/p50  errors  '
             f'CPU us/req']
    for name, which in (('without idle', lambda r: r.without), (f'with {args.idle} idle', lambda r: r.loaded)):
        lines.append(f'{name:<20} {median(lambda r: which(r).requests_per_second):7.0f} '
                     f'{median(lambda r: which(r).p50) * 1e3:7.2f} {median(lambda r: which(r).p99) * 1e3:7.2f} '
                     f'{median(lambda r: which(r).p99 / which(r).p50):7.1f}x '
                     f'{sum(which(r).errors for r in rounds):7d} '
                     f'{median(lambda r: which(r).cpu_per_request) * 1e6:11.1f}')
    lines.append(f'with / without       {median(lambda r: r.ratio):6.2f}x  (goal >= 0.95; rounds '
                 f'{", ".join(f"{r.ratio:.2f}" for r in rounds)}); CPU per request '
                 f'{median(lambda r: r.loaded.cpu_per_request / r.without.cpu_per_request):.2f}x')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--idle', type=int, default=10000, help='idle connections to hold')
    parser.add_argument('--rounds', type=int, default=5, help='rounds; medians are shown')
    parser.add_argument('--duration', type=int, default=10, help='seconds of each wrk run')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('idle.py: terminated'))
    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    try:  # the server holds every idle connection and wrk's: they inherit this limit
        server.raise_fd_limit(args.idle + args.connections + 64)
    except RuntimeError as error:
        sys.exit(str(error))
    env = server.clean_env()
    print(f'apiphant echo on core {server.CORE} (--access-log off, keep-alive timeout 75 s); '
          f'wrk and hold.py on core {wrk.CORE}')
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append(r := measure(args, env))
        print(f'round {number}/{args.rounds}: {r.without.requests_per_second:.0f} -> '
              f'{r.loaded.requests_per_second:.0f} req/s ({r.ratio:.2f}x), CPU '
              f'{r.without.cpu_per_request * 1e6:.1f} -> {r.loaded.cpu_per_request * 1e6:.1f} us/req, '
              f'p99 {r.without.p99 * 1e3:.2f} -> '
              f'{r.loaded.p99 * 1e3:.2f} ms, {r.per_connection / 1024:.1f} KiB per idle connection, '
              f'held {r.held} failed {r.failed} in {r.opening:.1f} s, established {r.established}, '
              f'dropped {r.dropped}', file=sys.stderr, flush=True)
    print()
    print(report(rounds, args))


if __name__ == '__main__':
    main()
