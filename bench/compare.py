"""apiphant's echo from two checkouts, side by side: req/s and CPU µs per
request under wrk, in interleaved rounds (the noise of a shared machine
spreads over both). Run by hand, never in tests.

    .venv/bin/python bench/compare.py OLD_CHECKOUT [--new DIR] [--rounds 5] [--duration 5] [--connections 50]

A checkout is a directory holding the apiphant package (a git worktree of
an older commit, say: ``git worktree add /tmp/before COMMIT``). Both serve
examples/myproduct with their default settings and the access log to
/dev/null; the server is pinned to core 0, wrk to core 1.
"""
import argparse
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def round_of(checkout, port, duration, connections):
    env = {**os.environ, 'PYTHONPATH': str(checkout)}
    server = subprocess.Popen(['taskset', '-c', '0', sys.executable, '-m', 'apiphant', str(ROOT / 'examples' / 'myproduct'),
                               f'127.0.0.1:{port}', '--access-log', '/dev/null'], env=env, cwd=checkout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        before = cpu_seconds(server.pid)
        out = subprocess.run(['taskset', '-c', '1', 'wrk', '-t1', f'-c{connections}', f'-d{duration}s', '--latency',
                              '-s', str(ROOT / 'bench' / 'post.lua'), f'http://127.0.0.1:{port}/api/v0/echo/read'],
                             capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(server.pid) - before
        total = int(next(line for line in out.splitlines() if 'requests in' in line).split()[0])
        p99 = next(line for line in out.splitlines() if line.strip().startswith('99%')).split()[1]
        return total / duration, used / total * 1e6, p99
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('old')
    parser.add_argument('--new', default=str(ROOT))
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--duration', type=int, default=5)
    parser.add_argument('--connections', type=int, default=50)
    args = parser.parse_args()
    results = {'old': [], 'new': []}
    for number in range(args.rounds):
        for name in ('old', 'new'):
            result = round_of(getattr(args, name), 18000 + number * 2 + (name == 'new'), args.duration,
                              args.connections)
            results[name].append(result)
            print(f'round {number + 1} {name}: {result[0]:,.0f} req/s, {result[1]:.1f} µs CPU/request, p99 {result[2]}')
    print('\n| checkout | req/s (median) | CPU µs/request (median) | p99 of the median round |')
    print('|---|---|---|---|')
    for name in ('old', 'new'):
        rows = sorted(results[name])
        print(f'| {name}: {getattr(args, name)} | {rows[len(rows) // 2][0]:,.0f} | '
              f'{statistics.median(r[1] for r in rows):.1f} | {rows[len(rows) // 2][2]} |')


if __name__ == '__main__':
    main()
