"""What a watched table's writes cost: create and update of the same table,
watched and not, on SQLite and PostgreSQL, side by side in each round; run
by hand, never in tests.

Usage: .venv/bin/python bench/live_writes.py [--duration 5] [--rounds 3] [--connections 50]
       [--only sqlite|postgresql] [--postgresql URL]

One apiphant process (pinned to core 0) serves bench/livewrites, whose
tables ``unwatched`` and ``watched`` differ only by the watch action; wrk
(core 1) creates rows, then updates rows by random id, in each table in
turn, for --rounds interleaved rounds. A create of a watched table cannot
take the create's fast path (one statement straight through the driver,
group-committed in SQLite, one round trip in PostgreSQL): it is a
transaction that also records the change (and, in PostgreSQL, takes the
log's advisory lock and notifies). An update reads the row before it
changes it, to record both. Printed: req/s, p99 and the server's CPU per
request, and watched / unwatched.
"""
import argparse
import os
import pathlib
import platform
import signal
import statistics
import sys
import tempfile
import uuid

import crud
import server
import wrk

BENCH = pathlib.Path(__file__).resolve().parent
PRODUCT = BENCH / 'livewrites'
ROWS = 1000  # rows each table has before the updates

CREATE = '''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"title": "bench ' .. counter .. '", "points": ' .. (counter % 100) .. '}')
end
'''
UPDATE = '''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, '{"id": ' .. math.random(1, %d) .. ', "points": ' .. math.random(0, 99) .. '}')
end
''' % ROWS


def measure(name, url, args, directory):
    port = server.free_port()
    env = {**server.clean_env(), 'APIPHANT_DATABASE_URL': url}
    found = {}
    with server.Server(server.apiphant(str(PRODUCT), port), port, env) as running:
        base = f'http://127.0.0.1:{port}'
        for table in ('unwatched', 'watched'):
            for n in range(ROWS):
                status, body = crud.post(f'{base}/api/v0/{table}/create', f'{{"title": "row {n}"}}')
                if status != 200:
                    raise RuntimeError(f'{name}: create answered {status} {body!r}')
        for round_ in range(args.rounds):
            for action, script in (('create', CREATE), ('update', UPDATE)):
                for table in ('unwatched', 'watched'):
                    before = running.cpu()
                    result = crud.load(f'{base}/api/v0/{table}/{action}', script, args.duration, args.connections,
                                       directory)
                    cpu = (running.cpu() - before) / max(result.requests, 1)
                    found.setdefault((action, table), []).append((result, cpu))
                    print(f'{name} round {round_ + 1} {action} {table}: {result.requests_per_second:.0f} req/s, '
                          f'p99 {result.p99 * 1e3:.2f} ms, {cpu * 1e6:.0f} us CPU, {result.errors} errors',
                          file=sys.stderr, flush=True)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=int, default=5, help='seconds of load per table, action and round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--connections', type=int, default=50)
    parser.add_argument('--only', action='append', choices=['sqlite', 'postgresql'])
    parser.add_argument('--postgresql', default=crud.POSTGRESQL, metavar='URL')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('live_writes.py: terminated'))
    server.raise_fd_limit(args.connections + 64)
    print(f'{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, load '
          f'{os.getloadavg()[0]:.2f}; apiphant on core {server.CORE}, wrk on core {wrk.CORE} '
          f'(-c{args.connections} -d{args.duration}s), {args.rounds} rounds; medians')
    print(f'{"database":<10} {"action":<7} {"unwatched":>10} {"watched":>10} {"ratio":>6} '
          f'{"CPU us":>7} {"CPU us":>7} {"p99 ms":>7} {"p99 ms":>7}')
    with tempfile.TemporaryDirectory() as directory:
        for name in ('sqlite', 'postgresql'):
            if args.only and name not in args.only:
                continue
            if name == 'sqlite':
                url, drop = f'sqlite:///{pathlib.Path(directory) / f"{uuid.uuid4().hex}.sqlite3"}', lambda: None
            else:
                url, _, drop = crud.postgresql_database(args.postgresql)
                if url is None:
                    print(f'{name}: skipped, {_}')
                    continue
            try:
                found = measure(name, url, args, directory)
            finally:
                drop()
            for action in ('create', 'update'):
                plain, watched = found[action, 'unwatched'], found[action, 'watched']
                rate = [statistics.median(r.requests_per_second for r, _ in runs) for runs in (plain, watched)]
                cpu = [statistics.median(c for _, c in runs) * 1e6 for runs in (plain, watched)]
                p99 = [statistics.median(r.p99 for r, _ in runs) * 1e3 for runs in (plain, watched)]
                print(f'{name:<10} {action:<7} {rate[0]:10.0f} {rate[1]:10.0f} {rate[1] / rate[0]:6.2f} '
                      f'{cpu[0]:7.0f} {cpu[1]:7.0f} {p99[0]:7.2f} {p99[1]:7.2f}', flush=True)


if __name__ == '__main__':
    main()
