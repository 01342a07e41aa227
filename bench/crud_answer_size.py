"""The server's memory under big CRUD answers (issue 11, item 1).

A product with one table, ``pages``, whose text column is declared without a
``max_length`` (as in the issue). The bench stores 100 rows of the longest
body the server accepts (it tries ``--row-chars``, then the default limit,
65,536), then 10 clients each list ``{"page_size": 100}`` ``--rounds`` times
at once (``--column`` declares it otherwise). Printed: the row length stored, the answers (status and size), the
server's RSS before, at its peak (VmHWM) and 2 s after.

    .venv/bin/python bench/crud_answer_size.py [--row-chars 1000000] [--checkout DIR]

``--checkout`` serves from another checkout of apiphant (a worktree of an
older commit) to compare before and after. SQLite, in a temporary directory.
"""
import argparse
import collections
import pathlib
import tempfile
import threading
import time

import requests

from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
TABLE = '''from apiphant.crud import Column, Table

pages = Table('pages', body={column})
'''


def product(directory, column):
    package = directory / 'bigrows'
    (package / 'api' / 'v0').mkdir(parents=True)
    for init in (package, package / 'api', package / 'api' / 'v0'):
        (init / '__init__.py').write_text('')
    (package / 'api' / 'v0' / 'pages.py').write_text(TABLE.format(column=column))
    return package


def serve(checkout, package, directory):
    server = ServedProduct(package, '--access-log', 'off', '--max-body-size', '2M', cwd=checkout,
                           env={'PYTHONPATH': str(checkout),
                                'APIPHANT_DATABASE_URL': f'sqlite:///{directory / "pages.sqlite3"}'}).start()
    return server.process, f'{server.url}/api/v0/pages'


def memory(pid):
    """(RSS, peak RSS) in MB."""
    fields = dict(line.split(':', 1) for line in pathlib.Path(f'/proc/{pid}/status').read_text().splitlines())
    return tuple(int(fields[name].split()[0]) / 1024 for name in ('VmRSS', 'VmHWM'))


def fill(url, rows, row_chars):
    session = requests.Session()
    for length in (row_chars, 65536):
        response = session.post(f'{url}/create', json={'body': 'x' * length}, timeout=60)
        if response.status_code == 200:
            break
    else:
        raise SystemExit(f'no row stored: {response.text}')
    for _ in range(rows - 1):
        session.post(f'{url}/create', json={'body': 'x' * length}, timeout=60).raise_for_status()
    return length


def attack(url, clients, rounds):
    answers = collections.Counter()
    sizes = []

    def client():
        session = requests.Session()
        for _ in range(rounds):
            response = session.post(f'{url}/list', json={'page_size': 100}, timeout=300)
            answers[response.status_code] += 1
            sizes.append(len(response.content))
    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, max(sizes), time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkout', default=str(ROOT))
    parser.add_argument('--row-chars', type=int, default=1_000_000)
    parser.add_argument('--rows', type=int, default=100)
    parser.add_argument('--clients', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--column', default='Column(str)',
                        help="the body's declaration, e.g. 'Column(str, max_length=None)' (no bound: the answer "
                             "budget alone)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        directory = pathlib.Path(directory)
        process, url = serve(pathlib.Path(arguments.checkout).resolve(), product(directory, arguments.column),
                             directory)
        try:
            length = fill(url, arguments.rows, arguments.row_chars)
            time.sleep(1)
            before, _ = memory(process.pid)
            answers, largest, seconds = attack(url, arguments.clients, arguments.rounds)
            _, peak = memory(process.pid)
            time.sleep(2)
            after, _ = memory(process.pid)
        finally:
            process.terminate()
            process.wait(15)
    print(f'checkout {arguments.checkout}, body={arguments.column}')
    print(f'{arguments.rows} rows of {length:,} characters; {arguments.clients} clients x {arguments.rounds} '
          f'lists of page_size 100 in {seconds:.1f} s')
    print(f'answers {dict(answers)}, largest {largest / 2 ** 20:.1f} MiB')
    print(f'RSS before {before:.0f} MB, peak {peak:.0f} MB, 2 s after {after:.0f} MB')


if __name__ == '__main__':
    main()
