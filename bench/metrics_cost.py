"""What metrics cost on echo: apiphant with APIPHANT_METRICS=off and =on, side by side.

Usage: .venv/bin/python bench/metrics_cost.py [--rounds 6] [--duration 10] [--connections 50]
Each round serves examples/myproduct twice, metrics off and on (the order
alternating from round to round, so that a drift of the machine falls on
both), pinned to core 0 with wrk on core 1, and loads its echo. The table
shows the median req/s and server CPU time per request of each, on/off of
the medians, and the median of each round's own on/off (paired: the two runs
of a round are neighbours in time). Last, the front's answer to an echo
timed in this process, off and on: the cost of the per-request calls alone,
which a busy machine disturbs least.
Goal: on costs at most 10 % (req/s ratio >= 0.90, CPU ratio <= 1.10).
"""
import argparse
import shutil
import signal
import statistics
import sys
import time
import urllib.request

import server
import wrk

SETTINGS = ('off', 'on')


def measure(setting, args):
    port = server.free_port()
    # One hash seed for both: dict layouts then differ by the metrics alone, not by process.
    env = {**server.clean_env(), 'APIPHANT_METRICS': setting, 'PYTHONHASHSEED': '0'}
    with server.Server(server.apiphant(server.EXAMPLE, port), port, env) as running:
        running.check(server.ECHO_PATH)
        if setting == 'on':
            running_metrics(running)
        return wrk.run(running.url + server.ECHO_PATH, args.duration, args.connections, cpu=running.cpu)


def running_metrics(running):
    """The metrics are really on: /metrics answers and counted the check."""
    with urllib.request.urlopen(running.url + '/metrics', timeout=5) as response:
        text = response.read().decode()
    if f'apiphant_requests_total{{route="{server.ECHO_PATH}",status="200"}} 1' not in text:
        raise RuntimeError(f'/metrics did not count the check:\n{text[:2000]}')


def answer_cost(repeats=7, count=50_000):
    """CPU µs of the front's answer to one echo (routing, dispatch, the action,
    the response bytes; no socket I/O) with metrics off and on, in this
    process: the best of ``repeats`` interleaved runs, which a busy machine
    disturbs far less than req/s."""
    import socket
    from apiphant.dispatch import app
    from apiphant.front import Connection, Front, Message
    from apiphant.metrics import Metrics

    def connection(metrics):
        application = app(str(server.EXAMPLE), metrics=metrics)
        with socket.socket() as listener:
            listener.bind(('127.0.0.1', 0))
            listener.listen()
            front = Front(application, listener)
        return Connection(front, socket.socket(), ('127.0.0.1', 40000))

    def run(each):
        started = time.process_time()
        for _ in range(count):
            message = Message(server.ECHO_PATH.encode())
            message.body, message.method = b'{"hello": "world"}', b'POST'
            each._answer(message, last=True, must_close=False)
        return (time.process_time() - started) / count * 1e6

    connections = {'off': connection(None), 'on': connection(Metrics())}
    best = {setting: min(run(each) for _ in range(repeats)) for setting, each in connections.items()}
    for each in connections.values():
        each.sock.close()
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=6, help='rounds of off and on')
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per run')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('metrics_cost.py: terminated'))
    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    try:
        server.raise_fd_limit(args.connections + 64)
    except RuntimeError as error:
        sys.exit(str(error))
    print(f'apiphant echo ({server.EXAMPLE.name}, --access-log off), APIPHANT_METRICS off and on; '
          f'server on core {server.CORE}, wrk on core {wrk.CORE}: '
          f'{" ".join(wrk.command("URL", args.duration, args.connections)[3:])}')
    results = {setting: [] for setting in SETTINGS}
    for number in range(1, args.rounds + 1):
        for setting in SETTINGS if number % 2 else reversed(SETTINGS):
            result = measure(setting, args)
            results[setting].append(result)
            print(f'round {number}/{args.rounds} metrics {setting:<3} {result.requests_per_second:8.0f} req/s '
                  f'{result.cpu_per_request * 1e6:6.1f} us/req p99 {result.p99 * 1e3:.2f} ms, '
                  f'{result.errors} errors', file=sys.stderr, flush=True)
    figures = {setting: (statistics.median(r.requests_per_second for r in rounds),
                         statistics.median(r.cpu_per_request for r in rounds) * 1e6,
                         statistics.median(r.p99 for r in rounds) * 1e3,
                         sum(r.errors for r in rounds))
               for setting, rounds in results.items()}
    print()
    print(f'{"metrics":<8} {"req/s":>8} {"CPU us/req":>10} {"p99 ms":>7} {"errors":>6}   (medians of {args.rounds} rounds)')
    for setting, (rps, cpu, p99, errors) in figures.items():
        print(f'{setting:<8} {rps:8.0f} {cpu:10.1f} {p99:7.2f} {errors:6d}')
    (off_rps, off_cpu, *_), (on_rps, on_cpu, *_) = figures['off'], figures['on']
    print(f'{"on/off":<8} {on_rps / off_rps:7.3f}x {on_cpu / off_cpu:9.3f}x   '
          f'goal: req/s >= 0.90x, CPU <= 1.10x')
    # The two runs of a round are neighbours in time: their ratio cancels most of a busy machine's drift.
    paired = [(on.requests_per_second / off.requests_per_second, on.cpu_per_request / off.cpu_per_request)
              for off, on in zip(results['off'], results['on'])]
    print(f'{"paired":<8} {statistics.median(r for r, _ in paired):7.3f}x '
          f'{statistics.median(c for _, c in paired):9.3f}x   (median of the rounds\' own on/off)')
    best = answer_cost()
    print(f'\nthe front\'s answer to an echo, in process (no socket I/O): off {best["off"]:.2f} us, '
          f'on {best["on"]:.2f} us: +{best["on"] - best["off"]:.2f} us a request')


if __name__ == '__main__':
    main()
