"""Time to a 503 when the PostgreSQL server is blackholed (issue 11, item 3).

The database URL names a port on 127.0.0.1 that listens with a backlog of 0
and never accepts: the first connection is left without an answer, the next
ones without a handshake, as behind a firewall that drops. The server
(the CRUD test product, default settings: database_wait 5 s) starts, then
one client lists tasks, then 10 clients at once. Printed: the start-up time
and each answer's status and time.

    .venv/bin/python bench/crud_blackhole.py [--checkout DIR]
"""
import argparse
import pathlib
import socket
import threading
import time

import requests

from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent


def serve(checkout, url):
    started = time.monotonic()
    product = checkout / 'tests' / 'products' / 'crudproduct'  # the checkout's own
    server = ServedProduct(product, '--access-log', 'off', env={'PYTHONPATH': str(checkout),
                                                                 'APIPHANT_DATABASE_URL': url}, cwd=checkout).start()
    return server.process, f'{server.url}/api/v0', time.monotonic() - started


def timed(url):
    started = time.monotonic()
    try:
        status = requests.post(url, json={}, timeout=120).status_code
    except requests.RequestException as error:
        status = type(error).__name__
    return status, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkout', default=str(ROOT))
    arguments = parser.parse_args()
    with socket.socket() as blackhole:
        blackhole.bind(('127.0.0.1', 0))
        blackhole.listen(0)
        url = f'postgresql://postgres@127.0.0.1:{blackhole.getsockname()[1]}/test'
        process, api, start_up = serve(pathlib.Path(arguments.checkout).resolve(), url)
        try:
            one = timed(f'{api}/tasks/list')
            results = [None] * 10

            def client(i):
                results[i] = timed(f'{api}/{("tasks", "items")[i % 2]}/list')
            threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            process.terminate()
            process.wait(15)
    print(f'checkout {arguments.checkout}')
    print(f'start-up {start_up:.1f} s (five tables, each tried once)')
    print(f'one list: {one[0]} in {one[1]:.2f} s')
    times = sorted(seconds for _, seconds in results)
    print(f'10 at once: {sorted({str(status) for status, _ in results})}, '
          f'min {times[0]:.2f} s, median {times[5]:.2f} s, max {times[-1]:.2f} s')


if __name__ == '__main__':
    main()
