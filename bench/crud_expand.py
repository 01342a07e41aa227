"""The cost of ``expand`` on a list page (issue 12, item 2).

Serves ``tests/products/crudrelations`` (SQLite in a temporary directory, or
``--database-url``) with 1 project, 20 people and 200 tasks, each task in
the project and assigned to one of the people. Then wrk (one core, 50
connections) posts ``tasks/list`` with ``page_size`` 20: without expand,
with ``["project"]``, and with ``["project", "assignee", "project.lead"]``,
``--rounds`` times each, alternated. Printed: req/s and the server's CPU
time per request (medians; the CPU time holds better on a busy machine) of
each, and their ratios to the list without expand.

    .venv/bin/python bench/crud_expand.py [--seconds 5] [--rounds 3] [--database-url postgresql://...]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile

import requests

import wrk
from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRODUCT = ROOT / 'tests' / 'products' / 'crudrelations'
BODIES = {
    'no expand': {'page_size': 20},
    'expand project': {'page_size': 20, 'expand': ['project']},
    'expand 3 fields': {'page_size': 20, 'expand': ['project', 'assignee', 'project.lead']},
}


def fill(url):
    session = requests.Session()

    def ok(path, data):
        response = session.post(f'{url}/api/v0/{path}', json=data, timeout=30)
        response.raise_for_status()
        return response.json()
    lead = ok('people/create', {'name': 'lead'})['id']
    project = ok('projects/create', {'name': 'bench', 'lead': lead})['id']
    people = [ok('people/create', {'name': f'person {n}'})['id'] for n in range(20)]
    for n in range(200):
        ok('tasks/create', {'title': f'task {n}', 'project': project, 'assignee': people[n % 20]})


def cpu(pid):
    """CPU seconds of the process ``pid`` (and of the threads it has, SQLite's)."""
    fields = pathlib.Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def load(url, body, seconds, directory, pid):
    script = directory / 'body.lua'
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.body = {json.dumps(json.dumps(body))}\n')
    command = ['taskset', '-c', str(wrk.CORE), 'wrk', '-t1', '-c50', f'-d{seconds}s', '--latency', '-s',
               str(script), f'{url}/api/v0/tasks/list']
    before = cpu(pid)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    used = cpu(pid) - before
    result = wrk.parse(completed.stdout)
    if result.errors:
        raise RuntimeError(f'{result.errors} errors with {body}')
    return result.requests_per_second, used / max(result.requests, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=int, default=5)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--database-url')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        directory = pathlib.Path(directory)
        url = args.database_url or f'sqlite:///{directory / "relations.sqlite3"}'
        server = ServedProduct(PRODUCT, '--access-log', 'off', cwd=ROOT,
                               env={'APIPHANT_DATABASE_URL': url, 'PYTHONPATH': str(ROOT)}).start()
        try:
            fill(server.url)
            figures = {name: [] for name in BODIES}
            for _ in range(args.rounds):
                for name, body in BODIES.items():
                    figures[name].append(load(server.url, body, args.seconds, directory, server.process.pid))
        finally:
            server.stop()
    base_rate = statistics.median(rate for rate, _ in figures['no expand'])
    base_cpu = statistics.median(used for _, used in figures['no expand'])
    print(f'tasks/list, page of 20, {url.split(":")[0]}, 50 connections, {args.rounds} x {args.seconds} s:')
    for name, runs in figures.items():
        rate = statistics.median(rate for rate, _ in runs)
        used = statistics.median(used for _, used in runs)
        print(f'  {name:16} {rate:6.0f} req/s ({rate / base_rate:.2f}x)   {used * 1e3:6.2f} ms CPU per request '
              f'({used / base_cpu:.2f}x)   req/s by round: ' + ' '.join(f'{rate:.0f}' for rate, _ in runs))

if __name__ == '__main__':
    main()
