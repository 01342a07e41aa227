"""Load shedding under a flood of slow requests (issue 9, item 6).

apiphant serves tests/products/proto with ``--max-in-flight N``; F flooders
each send, again and again, a slow request: one that waits a second on the
server (``--work sleep``, like a slow database), or computes for 20 ms
(``--work cpu``); after a 503 a flooder waits its Retry-After, as clients
should. A probe sends echo requests one after another. Printed, with the cap
and without it: the flood's answers (200s and 503s), how fast a 503 comes
back, and the probe's p50 and p99 and what it was answered.

    .venv/bin/python bench/shedding.py [--cap 100] [--flood 300] [--seconds 8] [--work sleep|cpu]
"""
import argparse
import http.client
import json
import pathlib
import signal
import statistics
import threading
import time

from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRODUCT = ROOT / 'tests' / 'products' / 'proto'
JSON = {'Content-Type': 'application/json'}


def serve(cap):
    server = ServedProduct(PRODUCT, '--access-log', 'off', '--max-in-flight', str(cap)).start()
    return server.process, server.port


def post(connection, path, body):
    started = time.perf_counter()
    connection.request('POST', path, body=json.dumps(body), headers=JSON)
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - started


WORK = {'sleep': ('/api/v0/slow/read', {'seconds': 1}), 'cpu': ('/api/v0/cpu/read', {'seconds': 0.02})}


def flood(port, stop, answers, work):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    while not stop.is_set():
        try:
            answers.append(post(connection, *WORK[work]))
            if answers[-1][0] == 503:
                stop.wait(1)  # its Retry-After
        except OSError:
            answers.append(('error', 0.0))
            connection.close()
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    connection.close()


def percentile(values, share):
    values = sorted(values)
    return values[max(0, int(len(values) * share) - 1)] * 1000 if values else float('nan')


def run(cap, flooders, seconds, work):
    process, port = serve(cap)
    try:
        stop, answers = threading.Event(), []
        threads = [threading.Thread(target=flood, args=(port, stop, answers, work)) for _ in range(flooders)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)  # the cap fills
        probe, statuses = [], []
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            status, took = post(connection, '/api/v0/echo/read', {'probe': 1})
            probe.append(took)
            statuses.append(status)
            time.sleep(0.005)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    shed = [took for status, took in answers if status == 503]
    served = [took for status, took in answers if status == 200]
    print(f'| {work} | {cap or "none"} | {flooders} | {len(served)} | {len(shed)} | {percentile(shed, 0.5):.2f} | '
          f'{percentile(shed, 0.99):.2f} | {len(probe)} | {statistics.median(probe) * 1000:.2f} | '
          f'{percentile(probe, 0.99):.2f} | {dict((s, statuses.count(s)) for s in set(statuses))} |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cap', type=int, default=100)
    parser.add_argument('--flood', type=int, default=300)
    parser.add_argument('--seconds', type=float, default=8)
    parser.add_argument('--work', choices=WORK, default='sleep')
    args = parser.parse_args()
    print('| work | cap | flooders | flood 200 | flood 503 | 503 p50 ms | 503 p99 ms | probe requests | probe p50 ms | '
          'probe p99 ms | probe answers |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    run(args.cap, args.flood, args.seconds, args.work)
    run(0, args.flood, args.seconds, args.work)


if __name__ == '__main__':
    main()
