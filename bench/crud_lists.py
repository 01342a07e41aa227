"""Lists that scale (issue 12, item 6): deep pages by offset and by cursor,
and a list with an indexed where, at 10,000 and 100,000 rows.

Serves ``tests/products/crudlists`` (tasks of 10 projects, indexed on
``(project, due)``) over SQLite in a temporary directory and over
PostgreSQL (``--postgresql``, a schema of its own, dropped after), with the
rows written by SQL before the server starts. Then wrk (one core, 50
connections) posts ``tasks/list``, page of 20:

- ``where+sort``: ``{"where": {"project": P}, "sort_by": "due"}`` (the
  index range), first page;
- ``first page``: no where, by id;
- ``page 400 offset``: ``{"page": 400}``;
- ``page 400 cursor``: ``{"after": meta.next of page 399}``.

Printed: req/s and the server's CPU time per request (medians of
``--rounds``; the CPU time holds better on a busy machine) of each, per
database and size.

    .venv/bin/python bench/crud_lists.py [--seconds 4] [--rounds 2] [--sizes 10000,100000]
        [--postgresql postgresql://postgres@127.0.0.1/test]
"""
import argparse
import contextlib
import pathlib
import sqlite3
import statistics
import tempfile
import uuid

import requests

from crud_expand import load
from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRODUCT = ROOT / 'tests' / 'products' / 'crudlists'
PROJECTS = 10


def fill_sql(backend, size, first_project):
    due = ("CASE WHEN i % 7 = 0 THEN NULL ELSE date('2026-01-01', '+' || (i % 3000) || ' days') END"
           if backend == 'sqlite' else
           "CASE WHEN mod(i, 7) = 0 THEN NULL ELSE DATE '2026-01-01' + mod(i, 3000) END")
    rows = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {size}) "
            if backend == 'sqlite' else '')
    source = 'n' if backend == 'sqlite' else f'generate_series(1, {size}) i'
    project = f'{first_project} + i % {PROJECTS}' if backend == 'sqlite' else f'{first_project} + mod(i, {PROJECTS})'
    false = '0' if backend == 'sqlite' else 'false'
    return (f"{rows}INSERT INTO tasks (version, project, due, points, title, done) "
            f"SELECT 1, {project}, {due}, i * 0.5, 'task ' || i, {false} FROM {source}")


@contextlib.contextmanager
def database(backend, directory, postgresql):
    """``(url, run(sql))`` of a fresh database."""
    if backend == 'sqlite':
        path = directory / f'lists-{uuid.uuid4().hex[:8]}.sqlite3'

        def run(sql):
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
                connection.execute(sql)
        yield f'sqlite:///{path}', run
        return
    import psycopg
    schema = f'bench_lists_{uuid.uuid4().hex[:8]}'
    with psycopg.connect(postgresql, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA {schema}')
        try:
            def run(sql):
                with admin.transaction():
                    admin.execute(f'SET LOCAL search_path TO {schema}')
                    admin.execute(sql)
            yield f'{postgresql}?options=-csearch_path%3D{schema}', run
        finally:
            admin.execute(f'DROP SCHEMA {schema} CASCADE')


def measure(backend, size, args, directory):
    with database(backend, directory, args.postgresql) as (url, run):
        env = {'APIPHANT_DATABASE_URL': url, 'PYTHONPATH': str(ROOT)}
        server = ServedProduct(PRODUCT, '--access-log', 'off', cwd=ROOT, env=env).start()
        try:
            session = requests.Session()

            def ok(path, data):
                response = session.post(f'{server.url}/api/v0/{path}', json=data, timeout=60)
                response.raise_for_status()
                return response.json()
            projects = [ok('projects/create', {'name': f'p{n}'})['id'] for n in range(PROJECTS)]
            run(fill_sql(backend, size, min(projects)))
            run('ANALYZE' if backend == 'sqlite' else 'ANALYZE tasks')
            cursor = ok('tasks/list', {'page': 399, 'page_size': 20})['meta']['next']
            bodies = {
                'where+sort': {'where': {'project': projects[3]}, 'sort_by': 'due', 'page_size': 20},
                'first page': {'page_size': 20},
                'page 400 offset': {'page': 400, 'page_size': 20},
                'page 400 cursor': {'after': cursor, 'page_size': 20},
            }
            for body in bodies.values():  # each answers a full page
                assert len(ok('tasks/list', body)['data']) == 20, body
            figures = {name: [] for name in bodies}
            for _ in range(args.rounds):
                for name, body in bodies.items():
                    figures[name].append(load(server.url, body, args.seconds, directory, server.process.pid))
        finally:
            server.stop()
    return {name: (statistics.median(rate for rate, _ in runs), statistics.median(used for _, used in runs))
            for name, runs in figures.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=int, default=4)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--sizes', default='10000,100000')
    parser.add_argument('--postgresql', help='a PostgreSQL URL to bench in a schema of its own too')
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(',')]
    backends = ['sqlite'] + (['postgresql'] if args.postgresql else [])
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for backend in backends:
            for size in sizes:
                results[backend, size] = measure(backend, size, args, pathlib.Path(directory))
    print(f'tasks/list, page of 20, 50 connections; req/s and ms of server CPU per request '
          f'(medians of {args.rounds} x {args.seconds} s):')
    names = list(next(iter(results.values())))
    print(f'  {"":22}' + ''.join(f'{name:>22}' for name in names))
    for (backend, size), figures in results.items():
        print(f'  {backend:10} {size:>8} rows' + ''.join(
            f'{figures[name][0]:12.0f} {figures[name][1] * 1e3:6.2f} ms' for name in names))
    for backend in backends:
        if len(sizes) > 1:
            low, high = results[backend, sizes[0]], results[backend, sizes[-1]]
            print(f'  {backend}: where+sort at {sizes[-1]} / at {sizes[0]} rows: '
                  f'{low["where+sort"][0] / high["where+sort"][0]:.2f}x the time by req/s, '
                  f'{high["where+sort"][1] / low["where+sort"][1]:.2f}x by CPU; page 400 by cursor / first page '
                  f'at {sizes[-1]}: {high["page 400 cursor"][1] / high["first page"][1]:.2f}x CPU, '
                  f'by offset: {high["page 400 offset"][1] / high["first page"][1]:.2f}x')


if __name__ == '__main__':
    main()
