"""apiphant's instructions per echo request, by phase, counted by valgrind; run by hand, never in tests.

Usage: .venv/bin/python bench/front_instructions.py [--checkout DIR] [--requests 20000] [--cpu-requests 200000]

Instruction counts do not care that the machine is shared: they are the
yardstick for changes to the hot path (``git worktree add /tmp/before HEAD``,
then ``--checkout /tmp/before`` for the baseline). What is counted runs in
one process, without sockets: the real Front and Application of
examples/myproduct with the daemon's default settings (metrics on, the
access log on, here to /dev/null), a Connection serving a socket stand-in
whose recv() hands it wrk's echo request, one a read, and whose send()
takes the answer whole. So the figure is the front's own work per request,
from the bytes read to the bytes written, without the kernel's and gevent's
hub (epoll, switches) that every gevent server pays alike.

valgrind's callgrind runs this script again (``--inner``); a call of
``os.getegid()``, a C function nothing else here calls, makes callgrind dump
its counters (``--dump-before=os_getegid``), so each part below is counted
alone, after a warm-up of the same part (CPython 3.11 specialises its
bytecode on the first runs):

- ``full``: Connection.serve(), from recv() to send() (what matters);
- then pieces of it, each alone: ``parse`` (feed_data with the Connection's
  llhttp callbacks), ``request id``, ``respond`` (Application.respond: the
  context, decode, the action, encode), within it ``decode``, ``call``,
  ``encode`` and ``context`` (enter + leave), ``metrics`` (request_started
  + request_finished), ``log`` (the AccessLog call, its flushes included),
  ``clock`` (two perf_counter calls), and ``front``: ``full`` less parse,
  request id, respond, metrics, log and clock;
- ``loop``: peers/httptools_loop.py's handle on the same stand-in (parse,
  orjson, its head: the loop issue 10 compares apiphant with, without
  gevent's recv and sendall, which are not counted for apiphant either).

Without valgrind (``--cpu-requests``), the same parts are timed with the
thread's CPU clock, for µs per request (noisy on a shared machine).
"""
import argparse
import gc
import glob
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLE = ROOT / 'examples' / 'myproduct'
PORT = 8080
REQUEST = (b'POST /api/v0/echo/read HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n'
           b'Content-Length: 18\r\n\r\n{"hello": "world"}' % PORT)
PARTS = ('full', 'parse', 'request id', 'respond', 'decode', 'call', 'encode', 'context', 'metrics', 'log', 'clock',
         'loop')
IN_FULL = ('parse', 'request id', 'respond', 'metrics', 'log', 'clock')  # what `front` is full less
WARM_UP = 3000


class Socket:
    """What a Connection reads and writes: ``count`` requests, one a recv(),
    then the end; shaped as gevent's socket (its non-blocking socket, its
    wait and read event), whose wait returns at once."""

    def __init__(self, count):
        self.left = count
        self.last = b''
        self._sock = self
        self._read_event = object()

    def _wait(self, event):
        pass

    def recv(self, size):
        if self.left:
            self.left -= 1
            return REQUEST
        return b''

    def send(self, data):
        self.last = data
        return len(data)

    def sendall(self, data):
        self.last = data

    def setsockopt(self, *args):
        pass

    def close(self):
        pass


def parts(checkout):
    """{part: function(count)} over the checkout's apiphant."""
    sys.path.insert(0, str(checkout))
    from apiphant import codec, current, dispatch, front, logs, metrics
    assert pathlib.Path(front.__file__).is_relative_to(checkout), front.__file__
    application = dispatch.app(str(EXAMPLE), metrics=metrics.Metrics('api'))
    listener = __import__('socket').socket()
    listener.bind(('127.0.0.1', 0))
    access_log = logs.AccessLog(open(os.devnull, 'a'))
    the_front = front.Front(application, listener, access_log=access_log)
    route = application.routes['/api/v0/echo/read']
    body = REQUEST[REQUEST.index(b'\r\n\r\n') + 4:]
    request = codec.decode(body)
    response = route.function(request)
    perf_counter = time.perf_counter

    def full(count):
        sock = Socket(count)
        the_front.server.handle(sock, ('127.0.0.1', 40000))
        return sock.last

    def parse(count):
        connection = front.Connection(the_front, Socket(0), ('127.0.0.1', 40000))
        feed, done = connection.parser.feed_data, connection.done
        for _ in range(count):
            feed(REQUEST)
            done.clear()

    def request_id(count):
        new = application.new_request_id
        for _ in range(count):
            new()

    context = (application.new_request_id(), route, '127.0.0.1', None, None, None, [])

    def respond(count):
        answer = application.respond
        for _ in range(count):
            answer(route, 'POST', body, b'application/json', context, None)

    def repeat(function, argument):
        def run(count):
            for _ in range(count):
                function(argument)
        return run

    def in_context(count):
        enter, leave = current.enter, current.leave
        for _ in range(count):
            leave(enter(context))

    def counted(count):
        started, finished, path = application.metrics.request_started, application.metrics.request_finished, \
            route.path
        for _ in range(count):
            started()
            finished(path, '200 OK', 0.0001)

    def log(count):
        request_id, log_request = context[0], access_log.__call__  # bound, as the front calls it
        for _ in range(count):
            log_request('127.0.0.1', 'POST', b'/api/v0/echo/read', '200 OK', 0.0001, request_id)

    def clock(count):
        for _ in range(count):
            perf_counter()
            perf_counter()

    sys.path.insert(0, str(BENCH / 'peers'))
    argv, sys.argv = sys.argv, [sys.argv[0]]
    import httptools_loop
    sys.argv = argv

    def loop(count):
        sock = Socket(count)
        httptools_loop.handle(sock, ('127.0.0.1', 40000))
        return sock.last

    answer = full(1)
    if not answer.startswith(b'HTTP/1.1 200 OK\r\n') or not answer.endswith(b'"hello":"world","server":"myproduct"}'):
        sys.exit(f'front_instructions.py: the echo answered {answer!r}')
    return {'full': full, 'parse': parse, 'request id': request_id, 'respond': respond,
            'decode': repeat(codec.decode, body), 'call': repeat(route.function, request),
            'encode': repeat(codec.encode, response), 'context': in_context, 'metrics': counted, 'log': log,
            'clock': clock, 'loop': loop}


def inner(checkout, count, timed):
    from gevent import monkey
    monkey.patch_all()  # as the daemon does
    functions = parts(checkout)
    gc.collect()
    gc.freeze()  # as apiphant.server.serve does after start-up
    results = {}
    os.getegid()  # callgrind: what came before is start-up
    for name in PARTS:
        functions[name](WARM_UP)
        os.getegid()  # the warm-up ends
        started = time.thread_time_ns()
        functions[name](count)
        results[name] = (time.thread_time_ns() - started) / count / 1e3
        os.getegid()  # the part ends
    if timed:
        for name, value in results.items():
            print(f'{name}\t{value}')


def counted(checkout, count):
    """{part: instructions per request}, from one callgrind run."""
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, 'callgrind.out')
        subprocess.run(['valgrind', '--tool=callgrind', '--dump-before=os_getegid', '--dump-instr=no',
                        f'--callgrind-out-file={out}', sys.executable, __file__, '--inner',
                        '--checkout', str(checkout), '--requests', str(count)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        totals = []
        for path in sorted(glob.glob(out + '.*'), key=lambda name: int(name.rsplit('.', 1)[1])):
            with open(path) as dump:
                totals.append(int(re.search(r'^totals: (\d+)', dump.read(), re.M).group(1)))
    # Dumps: start-up, then a warm-up and a part for each, then what is after the last.
    measured = totals[1:1 + 2 * len(PARTS)][1::2]
    if len(measured) != len(PARTS):
        sys.exit(f'front_instructions.py: {len(totals)} callgrind dumps, {2 * len(PARTS) + 2} expected')
    return dict(zip(PARTS, (value / count for value in measured)))


def timed(checkout, count):
    out = subprocess.run([sys.executable, __file__, '--inner', '--timed', '--checkout', str(checkout),
                          '--requests', str(count)], check=True, capture_output=True, text=True).stdout
    return {name: float(value) for name, value in (line.split('\t') for line in out.splitlines())}


def with_front(figures):
    figures = dict(figures)
    figures['front'] = figures['full'] - sum(figures[name] for name in IN_FULL)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkout', type=pathlib.Path, action='append',
                        help='a directory holding the apiphant package (repeatable; default: this one)')
    parser.add_argument('--requests', type=int, default=20_000, help='requests per part under valgrind')
    parser.add_argument('--cpu-requests', type=int, default=200_000, help='requests per part timed (0: none)')
    parser.add_argument('--inner', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--timed', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkouts = [path.resolve() for path in args.checkout or [ROOT]]
    if args.inner:
        return inner(checkouts[0], args.requests, args.timed)
    columns = []
    for checkout in checkouts:
        instructions = with_front(counted(checkout, args.requests))
        cpu = with_front(timed(checkout, args.cpu_requests)) if args.cpu_requests else None
        columns.append((checkout, instructions, cpu))
    print(f'{"part":<11}' + ''.join(f' {"instr/req":>10} {"us/req":>7}' for _ in columns) + '  checkout: '
          + ', '.join(str(checkout) for checkout, _, _ in columns))
    for name in (*PARTS[:1], 'front', *PARTS[1:]):
        print(f'{name:<11}' + ''.join(f' {instructions[name]:10.0f} {cpu[name] if cpu else 0:7.2f}'
                                      for _, instructions, cpu in columns))


if __name__ == '__main__':
    main()
