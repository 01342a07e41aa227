"""What CORS costs on echo: APIPHANT_CORS_ORIGINS empty (off) and set (on), every request from a browser origin.

Usage: .venv/bin/python bench/cors_cost.py [--rounds 1] [--duration 10] [--connections 50]
First, in this process, the CPU of one echo through the front's parser and
answer (no socket I/O), best of 7 interleaved runs, for: off without Origin
(the usual request), off with Origin, on without Origin, on with the allowed
Origin, on with another. Then, unless --no-wrk, examples/myproduct under
wrk (server on core 0, wrk on core 1), every request with ``Origin``: off,
then on; req/s and server CPU per request, and on/off.
"""
import argparse
import shutil
import signal
import socket
import statistics
import sys
import time
import urllib.request

import server
import wrk

ORIGIN = 'https://app.example.com'
REQUEST = (b'POST /api/v0/echo/read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
           b'Content-Length: 18\r\n%s\r\n{"hello": "world"}')
CASES = {  # name: (CORS origins, the Origin header sent)
    'off': ((), None),
    'off, Origin': ((), ORIGIN),
    'on': ((ORIGIN,), None),
    'on, Origin allowed': ((ORIGIN,), ORIGIN),
    'on, Origin not allowed': ((ORIGIN,), 'https://other.example.com'),
}


def answer_cost(repeats=7, count=30_000):
    """CPU µs of one echo fed to the front's parser and answered, by case."""
    from apiphant.dispatch import app
    from apiphant.front import Connection, Front

    def connection(origins):
        application = app(str(server.EXAMPLE), cors_origins=origins)
        with socket.socket() as listener:
            listener.bind(('127.0.0.1', 0))
            listener.listen()
            front = Front(application, listener)
        return Connection(front, socket.socket(), ('127.0.0.1', 40000))

    def run(each, data):
        feed, done = each.parser.feed_data, each.done
        started = time.process_time()
        for _ in range(count):
            feed(data)
            answer, _ = each._answer(done.pop(), last=True, must_close=False)
        elapsed = time.process_time() - started
        assert b'{"hello":"world","server":"myproduct"}' in answer
        return elapsed / count * 1e6

    cases = {}
    for name, (origins, origin) in CASES.items():
        header = b'Origin: %s\r\n' % origin.encode() if origin else b''
        cases[name] = connection(origins), REQUEST % header
    timings = {name: [] for name in CASES}
    for _ in range(repeats):
        for name, (each, data) in cases.items():
            timings[name].append(run(each, data))
    for each, _ in cases.values():
        each.sock.close()
    return {name: min(values) for name, values in timings.items()}


def measure(origins, args):
    port = server.free_port()
    env = {**server.clean_env(), 'APIPHANT_CORS_ORIGINS': origins, 'PYTHONHASHSEED': '0'}
    with server.Server(server.apiphant(server.EXAMPLE, port), port, env) as running:
        running.check(server.ECHO_PATH)
        request = urllib.request.Request(running.url + server.ECHO_PATH, b'{}', method='POST',
                                         headers={'Content-Type': 'application/json', 'Origin': ORIGIN})
        with urllib.request.urlopen(request, timeout=5) as response:
            allowed = response.headers.get('Access-Control-Allow-Origin')
        if allowed != (ORIGIN if origins else None):
            raise RuntimeError(f'CORS origins {origins!r}: Access-Control-Allow-Origin {allowed!r}')
        result = wrk.run(running.url + server.ECHO_PATH, args.duration, args.connections, cpu=running.cpu,
                         headers=[f'Origin: {ORIGIN}'])
        return result, result.cpu_per_request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=1, help='rounds of off and on under wrk')
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per run')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    parser.add_argument('--no-wrk', action='store_true', help='the in-process figures only')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('cors_cost.py: terminated'))
    best = answer_cost()
    print('one echo through the front\'s parser and answer, in process (no socket I/O), best of 7:')
    for name, micros in best.items():
        print(f'  {name:<24} {micros:6.2f} us  {micros / best["off"]:.3f}x')
    if args.no_wrk:
        return
    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    server.raise_fd_limit(args.connections + 64)
    results = {'off': [], 'on': []}
    for number in range(1, args.rounds + 1):
        for setting in ('off', 'on') if number % 2 else ('on', 'off'):
            result, cpu = measure(ORIGIN if setting == 'on' else '', args)
            results[setting].append((result.requests_per_second, cpu * 1e6, result.errors))
            print(f'round {number}/{args.rounds} CORS {setting:<3} {result.requests_per_second:8.0f} req/s '
                  f'{cpu * 1e6:6.1f} us/req CPU, {result.errors} errors', flush=True)
    (off_rps, off_cpu), (on_rps, on_cpu) = (
        (statistics.median(r for r, _, _ in rounds), statistics.median(c for _, c, _ in rounds))
        for rounds in results.values())
    print(f'under wrk, every request with Origin: on/off {on_rps / off_rps:.3f}x req/s, {on_cpu / off_cpu:.3f}x CPU')


if __name__ == '__main__':
    main()
