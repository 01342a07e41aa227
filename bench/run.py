"""Benchmark apiphant's echo against peer servers, side by side; run by hand, never in tests.

Usage: .venv/bin/python bench/run.py [--duration 10] [--connections 50] [--rounds 3] [--only STACK]
Each round loads every stack once, in turn, so the noise of a shared machine
spreads over all of them; the table shows each stack's median round.
`--connections 1000` is the many-connections case (goal: p99 <= 20x p50).
"""
import argparse
import dataclasses
import os
import pathlib
import platform
import shutil
import signal
import statistics
import sys

import server
import wrk

BENCH = pathlib.Path(__file__).resolve().parent
PEERS = BENCH / 'peers'
BENCH_PYTHON = BENCH / '.venv' / 'bin' / 'python'
ECHO_PATH = server.ECHO_PATH  # the peers answer on any path


@dataclasses.dataclass(frozen=True)
class Stack:
    name: str
    about: str
    argv: list  # '{port}' is replaced by the port the server listens on
    python: pathlib.Path = pathlib.Path(sys.executable)

    def command(self, port):
        return [str(part).replace('{port}', str(port)) for part in self.argv]


def stacks():
    apiphant, product = server.APIPHANT, server.EXAMPLE
    # The gevent peers run on this interpreter, so they use the very gevent and
    # orjson builds apiphant runs on: the differences are the code's.
    python = sys.executable
    return [
        Stack('apiphant', 'apiphant echo, --access-log off',
              [apiphant, product, '127.0.0.1:{port}', '--access-log', 'off']),
        Stack('apiphant+log', 'apiphant echo, access log to /dev/null',
              [apiphant, product, '127.0.0.1:{port}', '--access-log', '/dev/null']),
        Stack('pywsgi', 'bare gevent.pywsgi WSGI echo, orjson',
              [python, PEERS / 'pywsgi_hello.py', '{port}']),
        Stack('loop', 'bare httptools loop on a StreamServer, orjson echo',
              [python, PEERS / 'httptools_loop.py', '{port}']),
        Stack('canned', 'gevent StreamServer, fixed response (ceiling)',
              [python, PEERS / 'canned_stream.py', '{port}']),
        Stack('lean', 'the same loop with TCP_NODELAY and a yield after each batch',
              [python, PEERS / 'httptools_loop.py', '{port}', '--lean']),
        Stack('granian', 'raw WSGI echo on granian (Rust), 1 worker, 1 thread',
              [BENCH_PYTHON, '-m', 'granian', '--interface', 'wsgi', '--working-dir', PEERS,
               '--host', '127.0.0.1', '--port', '{port}', '--workers', '1', '--runtime-threads', '1',
               '--blocking-threads', '1', '--http', '1', '--no-ws', '--no-access-log',
               '--log-level', 'warning', 'wsgi_echo:app'],
              python=BENCH_PYTHON),
        Stack('uvicorn', 'raw ASGI echo, uvicorn uvloop+httptools',
              [BENCH_PYTHON, '-m', 'uvicorn', 'asgi_echo:app', '--app-dir', PEERS,
               '--host', '127.0.0.1', '--port', '{port}', '--loop', 'uvloop',
               '--http', 'httptools', '--lifespan', 'off', '--no-access-log',
               '--log-level', 'warning'],
              python=BENCH_PYTHON),
    ]


@dataclasses.dataclass(frozen=True)
class Round:
    result: wrk.Result
    rss: int  # bytes
    exit_status: int


def measure(stack, args, env):
    port = server.free_port()
    with server.Server(stack.command(port), port, env) as running:
        running.check(ECHO_PATH)
        result = wrk.run(running.url + ECHO_PATH, args.duration, args.connections, cpu=running.cpu)
        rss = running.rss()
    return Round(result, rss, running.returncode)


def median_round(rounds):
    """The round of median throughput (the lower one for an even count), whole."""
    ordered = sorted(rounds, key=lambda r: r.result.requests_per_second)
    return ordered[(len(ordered) - 1) // 2]


def _figures(chosen):
    r = chosen.result
    return r.requests_per_second, r.p50 * 1e3, r.p99 * 1e3, chosen.rss / 2**20


def _cpu(rounds):
    """The server's CPU time per request, median of the rounds, in µs: the
    figure a busy neighbour on the machine disturbs least."""
    return statistics.median(each.result.cpu_per_request for each in rounds) * 1e6


def tail(result):
    """p99 / p50: how far the slowest 1 % fall behind the typical request."""
    return result.p99 / result.p50 if result.p50 else float('inf')


def table(measured):
    """One row per stack: its median round, each figure followed by its ratio
    to the first stack's (apiphant's, unless --only left it out)."""
    first = next(iter(measured))
    base = _figures(median_round(measured[first]))
    rows = [f'{"stack":<13} {"req/s":>8} {"/echo":>6} {"p50 ms":>7} {"/echo":>6} '
            f'{"p99 ms":>7} {"/echo":>6} {"p99/p50":>7} {"errors":>6} {"RSS MiB":>7} {"/echo":>6} '
            f'{"spread":>6} {"CPU us/req":>10} {"/echo":>6}']
    base_cpu = _cpu(measured[first])
    for name, rounds in measured.items():
        chosen = median_round(rounds)
        figures = _figures(chosen)
        ratios = [f'{value / of:5.2f}x' if of else '     -' for value, of in zip(figures, base)]
        throughputs = [each.result.requests_per_second for each in rounds]
        spread = (max(throughputs) - min(throughputs)) / statistics.median(throughputs)
        rows.append(f'{name:<13} {figures[0]:8.0f} {ratios[0]} {figures[1]:7.2f} {ratios[1]} '
                    f'{figures[2]:7.2f} {ratios[2]} {tail(chosen.result):6.1f}x {chosen.result.errors:6d} '
                    f'{figures[3]:7.1f} {ratios[3]} {spread:6.0%} {_cpu(rounds):10.1f} '
                    f'{_cpu(rounds) / base_cpu if base_cpu else 0:5.2f}x')
    return '\n'.join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per stack and round')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    parser.add_argument('--rounds', type=int, default=3, help='rounds; the median one is shown')
    parser.add_argument('--only', action='append', metavar='STACK',
                        choices=[stack.name for stack in stacks()],
                        help='measure this stack only (repeatable)')
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so every server is still stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('run.py: terminated'))

    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    chosen = [stack for stack in stacks() if not args.only or stack.name in args.only]
    for stack in list(chosen):
        if not stack.python.exists():
            print(f'{stack.name}: skipped, {stack.python} is absent (run bash bench/setup.sh)')
            chosen.remove(stack)
    env = server.clean_env()
    # wrk holds a descriptor per connection and inherits this process's limit.
    try:
        server.raise_fd_limit(args.connections + 64)
    except RuntimeError as error:
        sys.exit(str(error))

    print(f'{platform.python_implementation()} {platform.python_version()}, '
          f'{os.cpu_count()} cores; servers on core {server.CORE}, wrk on core {wrk.CORE}: '
          f'{" ".join(wrk.command("URL", args.duration, args.connections)[3:])}')
    for stack in chosen:
        print(f'  {stack.name:<13} {stack.about}')
    measured = {stack.name: [] for stack in chosen}
    for number in range(1, args.rounds + 1):
        for stack in chosen:
            measured[stack.name].append(this := measure(stack, args, env))
            r = this.result
            print(f'round {number}/{args.rounds} {stack.name:<13} {r.requests_per_second:8.0f} req/s '
                  f'p99 {r.p99 * 1e3:.2f} ms, {r.non_2xx} non-2xx, {r.socket_errors} socket errors, '
                  f'exit {this.exit_status}', file=sys.stderr, flush=True)
    print()
    print(table(measured))


if __name__ == '__main__':
    main()
