"""Benchmark generated CRUD on SQLite and PostgreSQL; run by hand, never in tests.

Usage: .venv/bin/python bench/crud.py [--duration 10] [--connections 50] [--rows 10000]
       [--only sqlite|postgresql] [--postgresql URL]

For each database, the tasks table of tests/products/crudproduct is served by
one apiphant process pinned to core 0, filled with --rows rows, then loaded
by wrk on core 1 with: read by id (random ids), list with a where (a page of
20 with its total), and create. PostgreSQL gets a schema of its own, dropped
after; when it cannot be reached it is skipped with a note.
"""
import argparse
import os
import pathlib
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import server
import wrk

BENCH = pathlib.Path(__file__).resolve().parent
PRODUCT = BENCH.parent / 'tests' / 'products' / 'crudproduct'
POSTGRESQL = 'postgresql://postgres@127.0.0.1:5432/test'

SCRIPTS = {
    'read': '''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, '{"id": ' .. math.random(1, %(rows)d) .. '}')
end
''',
    'list': '''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"where": {"is_completed": false, "spent_time": {"$ge": 100, "$lt": 200}}, "sort_by": "-spent_time"}'
''',
    'create': '''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"title": "bench ' .. counter .. '", "spent_time": ' .. (counter %% 1000) .. '}')
end
''',
}
PATHS = {'read': '/api/v0/tasks/read', 'list': '/api/v0/tasks/list', 'create': '/api/v0/tasks/create'}


def sqlite_database(directory):
    path = pathlib.Path(directory) / 'bench.sqlite3'

    def fill(rows):
        with sqlite3.connect(path) as connection:
            connection.executemany(
                'INSERT INTO tasks (version, title, is_completed, spent_time, created_at) '
                "VALUES (1, ?, ?, ?, '2026-11-22 00:00:00.000000')", _rows(rows))
    return f'sqlite:///{path}', fill, lambda: None


def postgresql_database(url):
    import psycopg
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        return None, f'PostgreSQL is not reachable at {url}: {" ".join(str(error).split())}', None
    schema = f'bench_{uuid.uuid4().hex[:8]}'
    admin.execute(f'CREATE SCHEMA {schema}')

    def fill(rows):
        with admin.cursor() as cursor, cursor.copy(
                f'COPY {schema}.tasks (version, title, is_completed, spent_time, created_at) FROM STDIN') as copy:
            for row in _rows(rows):
                copy.write_row((1, *row, '2026-11-22 00:00:00+00'))

    def drop():
        admin.execute(f'DROP SCHEMA {schema} CASCADE')
        admin.close()
    separator = '&' if '?' in url else '?'
    return f'{url}{separator}options=-csearch_path%3D{schema}', fill, drop


def _rows(count):
    generator = random.Random(1)
    return [(f'task {i}', generator.random() < 0.5, generator.randrange(1000)) for i in range(count)]


def post(url, body):
    request = urllib.request.Request(url, data=body.encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def load(url, script, duration, connections, directory):
    path = pathlib.Path(directory) / f'{uuid.uuid4().hex}.lua'
    path.write_text(script)
    command = ['taskset', '-c', str(wrk.CORE), 'wrk', '-t1', f'-c{connections}', f'-d{duration}s',
               '--latency', '-s', str(path), url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    if completed.returncode:
        raise RuntimeError(f'wrk exited with {completed.returncode}:\n{completed.stdout}{completed.stderr}')
    return wrk.parse(completed.stdout)


def measure(name, database_url, fill, args, directory):
    port = server.free_port()
    env = {**server.clean_env(), 'APIPHANT_DATABASE_URL': database_url}
    results = {}
    with server.Server(server.apiphant(PRODUCT, port), port, env) as running:
        base = f'http://127.0.0.1:{port}'
        status, body = post(base + PATHS['read'], '{"id": 1}')  # the tables are made at start-up
        if status != 404:
            raise RuntimeError(f'{name}: an empty table answered {status} {body!r}')
        fill(args.rows)
        status, body = post(base + PATHS['read'], '{"id": 1}')
        if status != 200:
            raise RuntimeError(f'{name}: read answered {status} {body!r}')
        for workload in ('read', 'list', 'create'):
            script = SCRIPTS[workload] % {'rows': args.rows}
            results[workload] = load(base + PATHS[workload], script, args.duration, args.connections, directory)
            r = results[workload]
            print(f'{name:<10} {workload:<6} {r.requests_per_second:8.0f} req/s p99 {r.p99 * 1e3:.2f} ms, '
                  f'{r.non_2xx} non-2xx, {r.socket_errors} socket errors', file=sys.stderr, flush=True)
        rss = running.rss()
    return results, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per workload')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    parser.add_argument('--rows', type=int, default=10000, help='rows in the table before the load')
    parser.add_argument('--only', action='append', choices=['sqlite', 'postgresql'])
    parser.add_argument('--postgresql', default=POSTGRESQL, metavar='URL', help=f'default {POSTGRESQL}')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('crud.py: terminated'))
    server.raise_fd_limit(args.connections + 64)
    print(f'{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores; '
          f'apiphant on core {server.CORE}, wrk on core {wrk.CORE} (-t1 -c{args.connections} '
          f'-d{args.duration}s); {args.rows} rows before the load; the database server runs unpinned')
    rows = [f'{"database":<10} {"workload":<8} {"req/s":>8} {"p50 ms":>7} {"p99 ms":>7} {"errors":>6} '
            f'{"RSS MiB":>7}']
    with tempfile.TemporaryDirectory() as directory:
        for name in ('sqlite', 'postgresql'):
            if args.only and name not in args.only:
                continue
            url, fill, drop = (sqlite_database(directory) if name == 'sqlite'
                               else postgresql_database(args.postgresql))
            if url is None:
                print(f'{name}: skipped, {fill}')
                continue
            try:
                started = time.monotonic()
                results, rss = measure(name, url, fill, args, directory)
            finally:
                drop()
            for workload, r in results.items():
                rows.append(f'{name:<10} {workload:<8} {r.requests_per_second:8.0f} {r.p50 * 1e3:7.2f} '
                            f'{r.p99 * 1e3:7.2f} {r.errors:6d} {rss / 2**20:7.1f}')
            print(f'{name}: {time.monotonic() - started:.0f} s', file=sys.stderr)
    print()
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
