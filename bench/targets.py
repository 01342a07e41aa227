"""Dispatch cost against the number of routes: echo throughput of products with 1, 100, 10,000 targets.

Usage: .venv/bin/python bench/targets.py [--targets 1,100,10000] [--rounds 3] [--duration 10] [--connections 50]
Generates, in a temporary directory, products whose api/v0/ holds the echo
target beside N modules tNNNN.py (`def read(request): return request`), and
loads each one's echo in interleaved rounds. Goal: the same req/s, and the
same server CPU time per request, whatever N (a route is one dict look-up).
Start-up (until the echo answers) and RSS are shown too.
"""
import argparse
import dataclasses
import pathlib
import shutil
import signal
import statistics
import sys
import tempfile
import time

import server
import wrk

START_TIMEOUT = 300  # seconds; the warm-up start of 10,000 modules compiles them too


@dataclasses.dataclass(frozen=True)
class Round:
    result: wrk.Result
    startup: float  # seconds from the start of the process to the echo's first answer
    rss: int  # bytes, after the load


def generate(parent, count):
    """The product directory `parent/targets<count>` with `count` target modules beside echo."""
    product = parent / f'targets{count}'
    v0 = product / 'api' / 'v0'
    v0.mkdir(parents=True)
    for package in (product, product / 'api', v0):
        (package / '__init__.py').write_text('')
    shutil.copy(server.EXAMPLE / 'api' / 'v0' / 'echo.py', v0 / 'echo.py')
    for number in range(count):
        (v0 / f't{number:04d}.py').write_text('def read(request):\n    return request\n')
    return product


def measure(product, count, args, env):
    port = server.free_port()
    with server.Server(server.apiphant(product, port), port, env, start_timeout=START_TIMEOUT) as running:
        running.check(f'/api/v0/t{count - 1:04d}/read')  # the last target is routed too
        running.check(server.ECHO_PATH)
        startup = time.monotonic() - running.started
        result = wrk.run(running.url + server.ECHO_PATH, args.duration, args.connections, cpu=running.cpu)
        rss = running.rss()
    return Round(result, startup, rss)


def table(measured):
    def median(rounds, figure):
        return statistics.median(figure(r) for r in rounds)

    rows = [f'{"targets":>7} {"req/s":>8} {"/1":>6} {"CPU us/req":>10} {"/1":>6} {"p50 ms":>7} '
            f'{"p99 ms":>7} {"errors":>6} {"start s":>7} {"RSS MiB":>7} {"spread":>6}']
    first = next(iter(measured.values()))
    base = median(first, lambda r: r.result.requests_per_second)
    base_cpu = median(first, lambda r: r.result.cpu_per_request)
    for count, rounds in measured.items():
        throughputs = [r.result.requests_per_second for r in rounds]
        cpu = median(rounds, lambda r: r.result.cpu_per_request)
        rows.append(f'{count:7d} {statistics.median(throughputs):8.0f} '
                    f'{statistics.median(throughputs) / base:5.2f}x {cpu * 1e6:10.1f} {cpu / base_cpu:5.2f}x '
                    f'{median(rounds, lambda r: r.result.p50) * 1e3:7.2f} '
                    f'{median(rounds, lambda r: r.result.p99) * 1e3:7.2f} '
                    f'{sum(r.result.errors for r in rounds):6d} '
                    f'{median(rounds, lambda r: r.startup):7.2f} '
                    f'{median(rounds, lambda r: r.rss) / 2**20:7.1f} '
                    f'{(max(throughputs) - min(throughputs)) / statistics.median(throughputs):6.0%}')
    return '\n'.join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--targets', default='1,100,10000', help='comma-separated target counts (1 first)')
    parser.add_argument('--rounds', type=int, default=3, help='rounds; medians are shown')
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per product and round')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    args = parser.parse_args()
    counts = [int(count) for count in args.targets.split(',')]
    if min(counts) < 1 or max(counts) > 10000:
        sys.exit('target counts go from 1 to 10000 (module names are t0000 to t9999)')
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('targets.py: terminated'))
    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    env = server.clean_env()
    print(f'apiphant echo on core {server.CORE} (--access-log off), wrk on core {wrk.CORE}: '
          f'-c{args.connections} {args.duration}s; medians of {args.rounds} rounds')
    with tempfile.TemporaryDirectory(prefix='apiphant-targets-') as directory:
        products = {count: generate(pathlib.Path(directory), count) for count in counts}
        # Later starts read what the first one compiled, as a deployed product does; into the
        # temporary directory, so nothing is written beside the sources.
        env.pop('PYTHONDONTWRITEBYTECODE', None)
        env['PYTHONPYCACHEPREFIX'] = str(pathlib.Path(directory) / 'pycache')
        for count, product in products.items():  # a warm-up start compiles; it is not measured
            with server.Server(server.apiphant(product, port := server.free_port()), port, env,
                               start_timeout=START_TIMEOUT) as running:
                running.check(server.ECHO_PATH)
        measured = {count: [] for count in counts}
        for number in range(1, args.rounds + 1):
            for count, product in products.items():
                measured[count].append(r := measure(product, count, args, env))
                print(f'round {number}/{args.rounds} {count:5d} targets: '
                      f'{r.result.requests_per_second:8.0f} req/s, p99 {r.result.p99 * 1e3:.2f} ms, '
                      f'{r.result.cpu_per_request * 1e6:.1f} us/req, {r.result.errors} errors, '
                      f'started in {r.startup:.2f} s, RSS {r.rss / 2**20:.1f} MiB',
                      file=sys.stderr, flush=True)
    print()
    print(table(measured))


if __name__ == '__main__':
    main()
