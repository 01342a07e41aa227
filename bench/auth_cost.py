"""What access control costs on echo: no identity source, an open action, a verified token (issue 13).

Usage: .venv/bin/python bench/auth_cost.py [--rounds 3] [--duration 10] [--connections 50] [--no-wrk] [--profile]
The same echo (examples/myproduct's code) in three places, compared in one run:

  none     examples/myproduct's echo: the product declares no identity source, no gate
  open     bench/authbench's open/echo (ACCESS = ANYONE) behind the gate, no token
  token    bench/authbench's echo (authenticated, the default) with a valid token,
           the same on every request: the gate's cached path

First, in this process, the CPU of one echo through the front's parser and
answer (no socket I/O), best of 7 interleaved runs, for those three, for
``none`` with the token (parsed, unchecked: the header's own cost), for
``open`` with the token (checked, not needed), and for ``token`` with the gate's cache emptied before
each request (``uncached``: what a request costs when its token is verified);
then the µs of one ``tokens.verify`` alone. With --profile, or when
token/none is below the goal, a cProfile of the ``none`` and ``token`` loops.
Then, unless --no-wrk, each case under wrk (a server on core 0 per case and
round, wrk on core 1, interleaved rounds; ``token`` sends
``Authorization: Bearer ...`` on every request): median req/s and server CPU
µs per request, and each over ``none``. Goal (issue 13): token/none at least
0.85 in req/s.
"""
import argparse
import cProfile
import io
import json
import pathlib
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import sys
import time
import timeit
import urllib.error
import urllib.request

import server
import wrk

GOAL = 0.85  # token/none in req/s, issue 13
AUTHBENCH = pathlib.Path(__file__).resolve().parent / 'authbench'
AUDIENCE = 'authbench'
KEYS = f'bench:{secrets.token_urlsafe(32)}'  # made for the run, given to the servers by environment
ECHO, OPEN_ECHO = '/api/v0/echo/read', '/api/v0/open/echo/read'
REQUEST = (b'POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
           b'Content-Length: 18\r\n%s\r\n{"hello": "world"}')
# name: (product, path, sends the token, empties the gate's cache before each request)
CASES = {
    'none': (server.EXAMPLE, ECHO, False, False),
    'none, token': (server.EXAMPLE, ECHO, True, False),  # the header parsed, no gate: what parsing it costs
    'open': (AUTHBENCH, OPEN_ECHO, False, False),
    'open, token': (AUTHBENCH, OPEN_ECHO, True, False),
    'token': (AUTHBENCH, ECHO, True, False),
    'token, uncached': (AUTHBENCH, ECHO, True, True),
}
LOADED = ('none', 'open', 'token')  # the cases under wrk


def mint(ring, minutes=60):
    from apiphant.auth import tokens
    return tokens.mint(1, ['user'], audience=AUDIENCE, ring=ring, minutes=minutes)


def in_process(repeats=7, count=30_000, profile=False):
    """CPU µs of one echo fed to the front's parser and answered, by case;
    µs of one tokens.verify; ns of the parts of the cached path; the profiles asked for."""
    from apiphant.auth import tokens
    from apiphant.current import enter, leave
    from apiphant.dispatch import app
    from apiphant.front import Connection, Front

    ring = tokens.configure(KEYS)  # the Tokens source verifies with the process's ring
    token = mint(ring)
    applications = {}

    def connection(product):
        if product not in applications:
            applications[product] = app(str(product))
        with socket.socket() as listener:
            listener.bind(('127.0.0.1', 0))
            listener.listen()
            front = Front(applications[product], listener)
        return Connection(front, socket.socket(), ('127.0.0.1', 40000))

    def run(each, data, uncached, loops=count):
        feed, done = each.parser.feed_data, each.done
        known = each.front.app.gate.known if uncached else None
        started = time.process_time()
        if uncached:
            for _ in range(loops):
                known.clear()
                feed(data)
                answer, _ = each._answer(done.pop(), last=True, must_close=False)
        else:
            for _ in range(loops):
                feed(data)
                answer, _ = each._answer(done.pop(), last=True, must_close=False)
        elapsed = time.process_time() - started
        if not answer.startswith(b'HTTP/1.1 200 ') or b'"hello":"world"' not in answer:
            raise RuntimeError(f'unexpected answer {answer[:200]!r}')
        return elapsed / loops * 1e6

    cases = {}
    for name, (product, path, with_token, uncached) in CASES.items():
        header = b'Authorization: Bearer %s\r\n' % token.encode() if with_token else b''
        cases[name] = connection(product), REQUEST % (path.encode(), header), uncached
    # The gate is on only in authbench: a check that the figures compare what they claim to.
    refused = cases['token'][0]
    refused.parser.feed_data(REQUEST % (ECHO.encode(), b''))
    answer, _ = refused._answer(refused.done.pop(), last=True, must_close=False)
    if not answer.startswith(b'HTTP/1.1 401 '):
        raise RuntimeError(f'authbench echo without a token answered {answer[:100]!r}, not 401')
    timings = {name: [] for name in CASES}
    for _ in range(repeats):
        for name, (each, data, uncached) in cases.items():
            timings[name].append(run(each, data, uncached, count // 10 if uncached else count))
    best = {name: min(values) for name, values in timings.items()}

    verifies = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(count // 10):
            tokens.verify(token, audience=AUDIENCE)
        verifies.append((time.process_time() - started) / (count // 10) * 1e6)

    # The parts of the cached path, alone (timeit, best of `repeats`), in ns.
    application = applications[AUTHBENCH]
    header = b'Bearer ' + token.encode()
    parts = {'gate': application.gate, 'access': application.routes[ECHO].access, 'header': header,
             'context': ('id', None, '127.0.0.1', None, None, None, ()), 'enter': enter, 'leave': leave}
    parts['auth'] = application.gate.check(parts['access'], header)
    statements = {
        'Gate.check, cached token': 'gate.check(access, header)',
        '  of it, the role check': 'access.roles is not None and access.roles.isdisjoint(auth.roles)',
        '  of it, time.time()': 'gate.clock()',
        'respond: enter(context + (auth,))': 'leave(enter(context + (auth,)))',
    }
    split = {what: min(timeit.repeat(statement, globals=parts, number=count * 5, repeat=repeats)) / (count * 5) * 1e9
             for what, statement in statements.items()}

    profiles = {}
    if profile or best['token'] / best['none'] > 1 / GOAL:
        for name in ('none', 'token'):
            each, data, uncached = cases[name]
            profiler = cProfile.Profile()
            profiler.runcall(run, each, data, uncached)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats('tottime').print_stats(14)
            profiles[name] = out.getvalue()
    for each, _, _ in cases.values():
        each.sock.close()
    return best, min(verifies), split, profiles


def post(url, token=None):
    headers = {'Content-Type': 'application/json'}
    if token:
        headers['Authorization'] = f'Bearer {token}'
    request = urllib.request.Request(url, b'{"hello": "world"}', method='POST', headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def measure(name, token, args):
    product, path, with_token, _ = CASES[name]
    port = server.free_port()
    env = {**server.clean_env(), 'APIPHANT_AUTH_KEYS': KEYS, 'PYTHONHASHSEED': '0'}
    with server.Server(server.apiphant(product, port), port, env) as running:
        status, answer = post(running.url + path, token if with_token else None)
        if status != 200 or not isinstance(answer, dict) or answer.get('hello') != 'world':
            raise RuntimeError(f'{name}: {path} answered {status} {answer!r}\n{running.log()}')
        if product == AUTHBENCH and post(running.url + ECHO)[0] != 401:
            raise RuntimeError(f'{name}: {ECHO} without a token is not refused: the gate is off')
        result = wrk.run(running.url + path, args.duration, args.connections, cpu=running.cpu,
                         headers=[f'Authorization: Bearer {token}'] if with_token else ())
        return result, result.cpu_per_request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3, help='interleaved rounds of the cases under wrk')
    parser.add_argument('--duration', type=int, default=10, help='seconds of load per run')
    parser.add_argument('--connections', type=int, default=50, help='wrk keep-alive connections')
    parser.add_argument('--repeats', type=int, default=7, help='in-process runs of each case (the best is kept)')
    parser.add_argument('--no-wrk', action='store_true', help='the in-process figures only')
    parser.add_argument('--profile', action='store_true', help='profile the none and token loops in any case')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('auth_cost.py: terminated'))
    best, verify, split, profiles = in_process(args.repeats, profile=args.profile)
    print(f'one echo through the front\'s parser and answer, in process (no socket I/O), best of {args.repeats}:')
    for name, micros in best.items():
        print(f'  {name:<16} {micros:6.2f} us  {micros / best["none"]:.3f}x  '
              f'(none/it {best["none"] / micros:.3f})')
    print(f'  tokens.verify alone: {verify:.2f} us a call; the cache saves '
          f'{best["token, uncached"] - best["token"]:.2f} us a request')
    print('  the cached path\'s parts alone (ns; with the Authorization header parsed, the rest of token - none):')
    for what, nanos in split.items():
        print(f'    {what:<34} {nanos:6.0f} ns')
    for name, text in profiles.items():
        print(f'\ncProfile of the {name!r} loop, by own time:\n{text.strip()}')
    if args.no_wrk:
        return
    if not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    server.raise_fd_limit(args.connections + 64)
    from apiphant.auth import tokens
    token = mint(tokens.Keys.parse(KEYS), minutes=max(15, args.rounds * len(LOADED) * (args.duration + 15) // 60 + 5))
    results = {name: [] for name in LOADED}
    for number in range(1, args.rounds + 1):
        for name in LOADED if number % 2 else LOADED[::-1]:
            result, cpu = measure(name, token, args)
            results[name].append((result.requests_per_second, cpu * 1e6, result.errors))
            print(f'round {number}/{args.rounds} {name:<6} {result.requests_per_second:8.0f} req/s '
                  f'{cpu * 1e6:6.1f} us/req CPU, {result.errors} errors', flush=True)
    medians = {name: (statistics.median(r for r, _, _ in rounds), statistics.median(c for _, c, _ in rounds),
                      sum(e for _, _, e in rounds)) for name, rounds in results.items()}
    base_rps, base_cpu, _ = medians['none']
    print(f'under wrk, {args.connections} connections, medians of {args.rounds} rounds:')
    print(f'  {"case":<6} {"req/s":>8} {"/none":>6} {"CPU us/req":>10} {"/none":>6} errors')
    for name, (rps, cpu, errors) in medians.items():
        print(f'  {name:<6} {rps:8.0f} {rps / base_rps:6.3f} {cpu:10.1f} {cpu / base_cpu:6.3f} {errors:6d}')
    paired = {name: (statistics.median(r / b for (r, _, _), (b, _, _) in zip(rounds, results['none'])),
                     statistics.median(c / b for (_, c, _), (_, b, _) in zip(rounds, results['none'])))
              for name, rounds in results.items()}
    print('  paired by round (median of each round\'s ratio to none): ' + ', '.join(
        f'{name} {rps:.3f} req/s {cpu:.3f} CPU' for name, (rps, cpu) in paired.items() if name != 'none'))
    ratio = medians['token'][0] / base_rps
    print(f'goal token/none >= {GOAL} req/s: {ratio:.3f} ({"met" if ratio >= GOAL else "NOT met"})')


if __name__ == '__main__':
    main()
