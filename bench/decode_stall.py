"""Other clients' latency while 20 clients send large bodies (issue 11, item 2).

A probe client sends echo requests one after another on one keep-alive
connection and records each latency; meanwhile 20 attackers each send, again
and again, a 1 MiB body of a kind (``hostile``: ``{"a":[[],[],...]}``, 350k
empty lists, the body that cost 213 ms of hub time to decode; ``legit``: a
valid body of 60,000 small values). Printed: the probe's p50, p99 and max
alone and under each attack, the attackers' answers, and the server's RSS.

    .venv/bin/python bench/decode_stall.py [--seconds 8] [--checkout DIR]

``--checkout`` serves from another checkout of apiphant (e.g. a worktree of
an older commit) to compare before and after in one run.
"""
import argparse
import pathlib
import signal
import socket
import statistics
import threading
import time

from apiphant.pytest_plugin import ServedProduct

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRODUCT = ROOT / 'tests' / 'products' / 'proto'
HEAD = b'POST /api/v0/echo/read HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'


def bodies():
    hostile = b'{"a":[' + b','.join([b'[]'] * 349_000) + b']}'
    legit = b'{"rows":[' + b','.join(b'{"i":%d}' % i for i in range(30_000)) + b']}'
    return {'hostile': hostile, 'legit': legit}


def serve(checkout):
    server = ServedProduct(PRODUCT, '--access-log', 'off', '--max-body-size', '2M',
                           env={'PYTHONPATH': str(checkout)}, cwd=checkout).start()
    return server.process, server.port


def exchange(sock, request):
    sock.sendall(request)
    data = b''
    while b'\r\n\r\n' not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b'\r\n\r\n')
    length = int(head.lower().split(b'content-length: ')[1].split(b'\r\n')[0])
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.split(b' ', 2)[1]


def probe(port, seconds):
    request = HEAD % 2 + b'{}'
    latencies = []
    with socket.create_connection(('127.0.0.1', port)) as sock:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            exchange(sock, request)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
    return latencies


def attack(port, body, stop, answers):
    request = HEAD % len(body) + body
    while not stop.is_set():
        try:
            with socket.create_connection(('127.0.0.1', port)) as sock:
                while not stop.is_set():
                    answers.append(exchange(sock, request))
        except OSError:
            answers.append(b'reset')


def rss(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return 0.0


def row(name, latencies, answers, memory):
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[int(len(ms) * 0.99) - 1]
    counts = {status.decode(): answers.count(status) for status in set(answers)}
    print(f'| {name} | {len(ms)} | {statistics.median(ms):.2f} | {p99:.2f} | {ms[-1]:.1f} | {counts or "-"} | '
          f'{memory:.0f} |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=8)
    parser.add_argument('--checkout', default=str(ROOT))
    args = parser.parse_args()
    process, port = serve(args.checkout)
    try:
        print(f'apiphant from {args.checkout}; probe: echo, one connection; 20 attackers')
        print('| attack | probe requests | p50 ms | p99 ms | max ms | attackers\' answers | RSS MiB after |')
        print('|---|---|---|---|---|---|---|')
        row('none', probe(port, args.seconds), [], rss(process.pid))
        for name, body in bodies().items():
            stop, answers = threading.Event(), []
            attackers = [threading.Thread(target=attack, args=(port, body, stop, answers)) for _ in range(20)]
            for thread in attackers:
                thread.start()
            time.sleep(0.5)
            latencies = probe(port, args.seconds)
            memory = rss(process.pid)
            stop.set()
            for thread in attackers:
                thread.join()
            row(name, latencies, answers, memory)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)


if __name__ == '__main__':
    main()
