"""Other clients while 12 heavy lists run on PostgreSQL (issue 11, item 3).

A product of two tables (``big``: 1,000,000 rows of short text; ``small``:
20 rows) is served on PostgreSQL (127.0.0.1:5432, database test, a schema of
its own, dropped after). A probe lists ``small`` one request after another,
alone, then while 12 clients each run, again and again, a list of ``big``
whose where is an ``$or`` of 32 ``$contains`` (a full scan, seconds each).
Printed: the probe's p50, p99, max and statuses in both phases, and the heavy
lists' statuses and times.

    .venv/bin/python bench/crud_heavy_lists.py [--rows 1000000] [--seconds 10] [--checkout DIR]
"""
import argparse
import pathlib
import secrets
import statistics
import tempfile
import threading
import time

import psycopg
import requests

from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
POSTGRESQL = 'postgresql://postgres@127.0.0.1:5432/test'
TABLE = '''from apiphant.crud import Column, Table

{name} = Table('{name}', body=Column(str, max_length=100))
'''


def serve(checkout, directory, url):
    server = ServedProduct(directory / 'heavy', '--access-log', 'off', '--database-url', url,
                           env={'PYTHONPATH': str(checkout)}, cwd=checkout).start()
    return server.process, f'{server.url}/api/v0/tables'


def probe(api, seconds):
    answers = []
    with requests.Session() as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            status = session.post(f'{api}/list', json={'where': {}, 'page_size': 20}, timeout=60).status_code
            answers.append((status, time.perf_counter() - started))
            time.sleep(0.01)
    return answers


def heavy(api, stop, answers):
    where = {'$or': [{'body': {'$contains': f'zz{n:02d}'}} for n in range(32)]}
    with requests.Session() as session:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status = session.post(f'{api}/list', json={'where': where, 'page_size': 20}, timeout=60).status_code
            except requests.RequestException as error:
                status = type(error).__name__
            answers.append((status, time.perf_counter() - started))


def row(name, answers):
    ms = sorted(took * 1000 for _, took in answers)
    statuses = {}
    for status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    print(f'| {name} | {len(ms)} | {statistics.median(ms):.1f} | {ms[max(0, int(len(ms) * 0.99) - 1)]:.1f} | '
          f'{ms[-1]:.1f} | {statuses} |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--seconds', type=float, default=10)
    parser.add_argument('--checkout', default=str(ROOT))
    args = parser.parse_args()
    schema = 'bench_heavy_' + secrets.token_hex(4)
    with psycopg.connect(POSTGRESQL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA {schema}')
    process = None
    try:
        with tempfile.TemporaryDirectory() as directory:
            directory = pathlib.Path(directory)
            (directory / 'heavy' / 'api' / 'v0').mkdir(parents=True)
            for package in ('heavy', 'heavy/api', 'heavy/api/v0'):
                (directory / package / '__init__.py').write_text('')
            # two targets: /tables/... serves small, /bigtable/... big
            (directory / 'heavy' / 'api' / 'v0' / 'tables.py').write_text(TABLE.format(name='small'))
            (directory / 'heavy' / 'api' / 'v0' / 'bigtable.py').write_text(TABLE.format(name='big'))
            process, api = serve(pathlib.Path(args.checkout).resolve(), directory,
                                 f'{POSTGRESQL}?options=-csearch_path%3D{schema}')
            with psycopg.connect(POSTGRESQL, autocommit=True) as admin:
                admin.execute(f'SET search_path TO {schema}')
                columns = [row[0] for row in admin.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'big'",
                    (schema,))]
                version = ', version' if 'version' in columns else ''
                admin.execute(f"INSERT INTO big (body{version}) SELECT 'row ' || n || ' of the big table'"
                              f"{', 1' if version else ''} FROM generate_series(1, %s) AS n", (args.rows,))
                admin.execute(f"INSERT INTO small (body{version}) SELECT 'row ' || n{', 1' if version else ''} "
                              "FROM generate_series(1, 20) AS n")
                admin.execute('ANALYZE')
            print(f'PostgreSQL, {args.rows:,} rows in big; from {args.checkout}')
            print('| phase | requests | p50 ms | p99 ms | max ms | statuses |')
            print('|---|---|---|---|---|---|')
            row('probe alone (list small)', probe(api, args.seconds))
            stop, heavy_answers = threading.Event(), []
            big_api = api.replace('/tables', '/bigtable')
            threads = [threading.Thread(target=heavy, args=(big_api, stop, heavy_answers)) for _ in range(12)]
            for thread in threads:
                thread.start()
            time.sleep(1)
            answers = probe(api, args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            row('probe during 12 heavy lists', answers)
            row('the heavy lists', heavy_answers)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        with psycopg.connect(POSTGRESQL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA {schema} CASCADE')


if __name__ == '__main__':
    main()
