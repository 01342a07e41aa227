"""Logins with argon2id in threads, and echo beside them (issue 13).

apiphant serves tests/products/accounts_product (``Accounts()``) on a fresh
SQLite file with a user made by ``apiphant users``. In one run, on one
server: a probe sends ``echo/ping`` (open to anyone) one request after
another for ``--seconds``, first alone, then while ``--logins`` clients log
in again and again (the right password: no throttling). Printed: login
req/s and the answers' statuses, the login latency, and the probe's p50 and
p99 without and with the burst, side by side; before that, the time of a
refusal for a wrong password and for an unknown login.

    .venv/bin/python bench/auth_login.py [--argon2 default|owasp] [--logins 16] [--seconds 8] [--max-hashing N]

``default`` is apiphant's (argon2-cffi's PasswordHasher(): RFC 9106's
low-memory profile, t=3, 64 MiB, p=4); ``owasp`` is OWASP's cheat sheet's
first choice (t=2, 19 MiB, p=1). The server is not pinned to a core: the
hashes run in its threads, on every core there is.
"""
import argparse
import http.client
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRODUCT = ROOT / 'tests' / 'products' / 'accounts_product'
JSON = {'Content-Type': 'application/json'}
PASSWORD = 'a bench password, long enough'


def post(connection, path, body):
    started = time.perf_counter()
    connection.request('POST', path, body=json.dumps(body), headers=JSON)
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - started


def percentile(values, share):
    values = sorted(values)
    return values[max(0, int(len(values) * share) - 1)] * 1000 if values else float('nan')


def probe(port, seconds):
    """Echo requests one after another for ``seconds``: their latencies and statuses."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    took, statuses = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status, latency = post(connection, '/api/v0/echo/ping', {'n': 1})
        took.append(latency)
        statuses.append(status)
        time.sleep(0.002)
    connection.close()
    return took, statuses


def login_loop(port, stop, answers):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    while not stop.is_set():
        try:
            answers.append(post(connection, '/api/v0/auth/login', {'login': 'bench', 'password': PASSWORD}))
        except OSError:
            answers.append(('error', 0.0))
            connection.close()
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--argon2', choices=('default', 'owasp'), default='default')
    parser.add_argument('--logins', type=int, default=16, help='clients logging in at once')
    parser.add_argument('--seconds', type=float, default=8)
    parser.add_argument('--max-hashing', type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="hashes at once (Accounts' max_hashing; its default: the CPUs but one)")
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix='apiphant-auth-login-')
    env = {**os.environ, 'APIPHANT_DATABASE_URL': f'sqlite:///{directory}/bench.sqlite3',
           'ACCOUNTS_ARGON2': options.argon2, 'ACCOUNTS_MAX_HASHING': str(options.max_hashing),
           'ACCOUNTS_HASH_WAIT': '60'}
    subprocess.run([sys.executable, '-m', 'apiphant', 'users', str(PRODUCT), 'add', 'bench', '--password-stdin'],
                   input=PASSWORD + '\n', text=True, env=env, check=True, capture_output=True)
    server = ServedProduct(PRODUCT, '--access-log', 'off', env=env).start()
    try:
        connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=60)
        status, first = post(connection, '/api/v0/auth/login', {'login': 'bench', 'password': PASSWORD})
        assert status == 200, status
        alone = [post(connection, '/api/v0/auth/login', {'login': 'bench', 'password': PASSWORD})[1]
                 for _ in range(5)]
        # Refusals, interleaved: a wrong password (4: under the account's 5) and an unknown login.
        wrong, unknown = [], []
        for attempt in range(4):
            wrong.append(post(connection, '/api/v0/auth/login', {'login': 'bench', 'password': 'wrong!'}))
            unknown.append(post(connection, '/api/v0/auth/login', {'login': f'nobody{attempt}', 'password': 'wrong!'}))
        assert {status for status, _ in wrong + unknown} == {401}, wrong + unknown
        post(connection, '/api/v0/auth/login', {'login': 'bench', 'password': PASSWORD})  # clears the count
        connection.close()
        quiet, quiet_statuses = probe(server.port, options.seconds)
        stop, answers = threading.Event(), []
        threads = [threading.Thread(target=login_loop, args=(server.port, stop, answers))
                   for _ in range(options.logins)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the burst is under way
        busy, busy_statuses = probe(server.port, options.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    logins = [took for status, took in answers if status == 200]
    counts = {status: sum(1 for s, _ in answers if s == status) for status in {s for s, _ in answers}}
    print(f'argon2: {options.argon2}, {os.cpu_count()} CPUs, at most {options.max_hashing} hashes at once, '
          f'{options.logins} clients logging in')
    print(f'one login alone: median {statistics.median(alone) * 1000:.0f} ms (the first: {first * 1000:.0f} ms)')
    print(f'refused logins: wrong password median {statistics.median(t for _, t in wrong) * 1000:.0f} ms, '
          f'unknown login median {statistics.median(t for _, t in unknown) * 1000:.0f} ms')
    print(f'logins: {len(logins) / elapsed:.1f} req/s over {elapsed:.1f} s, answers {counts}, '
          f'p50 {percentile(logins, 0.5):.0f} ms, p99 {percentile(logins, 0.99):.0f} ms')
    print(f'{"echo probe":<22}{"requests":>10}{"p50 ms":>10}{"p99 ms":>10}{"max ms":>10}  statuses')
    for name, took, statuses in (('without logins', quiet, quiet_statuses), ('during the burst', busy, busy_statuses)):
        print(f'{name:<22}{len(took):>10}{percentile(took, 0.5):>10.2f}{percentile(took, 0.99):>10.2f}'
              f'{max(took) * 1000:>10.2f}  {sorted(set(statuses))}')


if __name__ == '__main__':
    main()
