"""Generated CRUD against its peer FastAPI + SQLAlchemy 2 on uvicorn, and the echo, in one run; by hand only.

Usage: .venv/bin/python bench/crud_peer.py [--duration 10] [--connections 50] [--rows 10000]
       [--rounds 1] [--only sqlite|postgresql] [--stack apiphant|fastapi] [--postgresql URL]

Each round: apiphant's echo (examples/myproduct), then per database and per
stack a fresh database (a SQLite file, or a PostgreSQL schema dropped after)
served by one process pinned to core 0: `apiphant` serves bench/crudbench
(the tasks table of tests/products/crudproduct with an index on
(is_completed, spent_time)), `fastapi` serves bench/peers/fastapi_crud.py
(the same table and index) with uvicorn from bench/.venv. The table is
filled with --rows rows, then wrk on core 1 runs read by id, list with the
indexed where (a page of 20, no total) and create, as bench/crud.py does.
The table gives the median round: req/s, CPU µs per request, the ratio to
the echo and to the peer, beside issue 12's goals.
"""
import argparse
import os
import pathlib
import platform
import signal
import statistics
import sys
import tempfile
import time

import crud
import server
import wrk

BENCH = pathlib.Path(__file__).resolve().parent
PRODUCT = BENCH / 'crudbench'
PEER_PYTHON = BENCH / '.venv' / 'bin' / 'python'
WORKLOADS = ('read', 'list', 'create')
# Issue 12's goals: the ratio to the echo; every figure is also to be 3x the peer's.
GOALS = {('sqlite', 'read'): 0.4, ('sqlite', 'list'): 0.15, ('sqlite', 'create'): 0.15,
         ('postgresql', 'read'): 0.2, ('postgresql', 'create'): 0.1}
PEER_GOAL = 3.0


def command(stack, port):
    if stack == 'apiphant':
        return server.apiphant(PRODUCT, port)
    return [PEER_PYTHON, '-m', 'uvicorn', 'fastapi_crud:app', '--app-dir', BENCH / 'peers',
            '--host', '127.0.0.1', '--port', str(port), '--no-access-log', '--log-level', 'warning']


def measure(stack, database_url, fill, args, directory):
    port = server.free_port()
    env = {**server.clean_env(), 'APIPHANT_DATABASE_URL': database_url, 'APIPHANT_BENCH_DATABASE_URL': database_url}
    results = {}
    with server.Server(command(stack, port), port, env) as running:
        base = running.url
        status, body = crud.post(base + crud.PATHS['read'], '{"id": 1}')  # the table is made at start-up
        if status != 404:
            raise RuntimeError(f'{stack}: an empty table answered {status} {body!r}\n{running.log()}')
        fill(args.rows)
        for workload, body in (('read', '{"id": 1}'), ('list', '{}'), ('create', '{"title": "check"}')):
            status, answer = crud.post(base + crud.PATHS[workload], body)
            if status != 200:
                raise RuntimeError(f'{stack}: {workload} answered {status} {answer!r}\n{running.log()}')
        for workload in WORKLOADS:
            script = crud.SCRIPTS[workload] % {'rows': args.rows}
            before = running.cpu()
            r = crud.load(base + crud.PATHS[workload], script, args.duration, args.connections, directory)
            cpu = (running.cpu() - before) / max(r.requests, 1)
            results[workload] = (r, cpu)
            print(f'  {stack:<8} {workload:<6} {r.requests_per_second:8.0f} req/s {cpu * 1e6:6.0f} us/req '
                  f'p99 {r.p99 * 1e3:.1f} ms, {r.errors} errors', file=sys.stderr, flush=True)
    return results


def echo(args):
    port = server.free_port()
    with server.Server(server.apiphant(server.EXAMPLE, port), port, server.clean_env()) as running:
        running.check(server.ECHO_PATH)
        r = wrk.run(running.url + server.ECHO_PATH, args.duration, args.connections, cpu=running.cpu)
    print(f'  echo {r.requests_per_second:8.0f} req/s {r.cpu_per_request * 1e6:6.0f} us/req',
          file=sys.stderr, flush=True)
    return r.requests_per_second, r.cpu_per_request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per workload')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    parser.add_argument('--rows', type=int, default=10000, help='rows in the table before the load')
    parser.add_argument('--rounds', type=int, default=1)
    parser.add_argument('--only', action='append', choices=['sqlite', 'postgresql'])
    parser.add_argument('--stack', action='append', choices=['apiphant', 'fastapi'])
    parser.add_argument('--postgresql', default=crud.POSTGRESQL, metavar='URL', help=f'default {crud.POSTGRESQL}')
    args = parser.parse_args()
    stacks = args.stack or ['apiphant', 'fastapi']
    if 'fastapi' in stacks and not PEER_PYTHON.exists():
        sys.exit('crud_peer.py: no bench/.venv: run bash bench/setup.sh')
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('crud_peer.py: terminated'))
    server.raise_fd_limit(args.connections + 64)
    print(f'{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores; servers on '
          f'core {server.CORE}, wrk on core {wrk.CORE} (-t1 -c{args.connections} -d{args.duration}s); '
          f'{args.rows} rows; {args.rounds} round(s); the database server runs unpinned')
    echoes, figures = [], {}  # (database, stack, workload): [(req/s, cpu)]
    with tempfile.TemporaryDirectory() as directory:
        for number in range(args.rounds):
            print(f'round {number + 1}', file=sys.stderr)
            echoes.append(echo(args))
            for name in ('sqlite', 'postgresql'):
                if args.only and name not in args.only:
                    continue
                for stack in stacks:
                    if name == 'sqlite':
                        url, fill, drop = crud.sqlite_database(tempfile.mkdtemp(dir=directory))
                    else:
                        url, fill, drop = crud.postgresql_database(args.postgresql)
                    if url is None:
                        print(f'{name}: skipped, {fill}')
                        break
                    started = time.monotonic()
                    try:
                        results = measure(stack, url, fill, args, directory)
                    finally:
                        drop()
                    for workload, (r, cpu) in results.items():
                        figures.setdefault((name, stack, workload), []).append((r.requests_per_second, cpu))
                    print(f'  {name} {stack}: {time.monotonic() - started:.0f} s', file=sys.stderr)
    echo_rps = statistics.median_low(rps for rps, _ in echoes)
    echo_cpu = statistics.median_low(cpu for _, cpu in echoes)
    print(f'\necho (apiphant, examples/myproduct): {echo_rps:.0f} req/s, {echo_cpu * 1e6:.0f} us/req')
    print(f'{"database":<10} {"workload":<8} {"stack":<9} {"req/s":>7} {"us/req":>7} {"/echo":>6} {"goal":>5} '
          f'{"/peer":>6}')
    for (name, stack, workload), values in figures.items():
        rps, cpu = statistics.median_low(values)
        peer = figures.get((name, 'fastapi', workload))
        versus = f'{rps / statistics.median_low(peer)[0]:5.1f}x' if peer and stack == 'apiphant' else ''
        goal = GOALS.get((name, workload))
        goal = f'{goal:.2f}' if goal and stack == 'apiphant' else ''
        print(f'{name:<10} {workload:<8} {stack:<9} {rps:7.0f} {cpu * 1e6:7.0f} {rps / echo_rps:6.3f} {goal:>5} '
              f'{versus:>6}')
    print(f'goals (issue 12): /echo at least the goal column; /peer at least {PEER_GOAL:.0f}x')


if __name__ == '__main__':
    main()
