"""apiphant's echo, its CPU per request split by phase, beside the lean loop's; run by hand, never in tests.

Usage: .venv/bin/python bench/phases.py [--load inproc|wrk] [--requests 200000] [--duration 10]
           [--connections 50] [--rounds 3] [--only STACK] [--clock thread|wall] [--profile]
Everything runs in this process, pinned to core 0: the real Front and
Application of examples/myproduct (`apiphant`; `apiphant+log` with the access
log to /dev/null; `apiphant+nodelay`, by name only, a what-if with
TCP_NODELAY) and the loops of peers/httptools_loop.py (`loop`, and `lean`:
TCP_NODELAY, a yield after each batch). The load is either

- inproc (the default): --connections client greenlets in this process, each
  sending --requests / --connections echo POSTs one after the other over
  loopback, the very bytes wrk sends. No other core is woken: the figures
  are the server's own CPU. The clients' own time is measured and taken
  out; the hub's, shared by both ends, stays in `hub`.
- wrk on core 1, as run.py does. Each send then also pays for waking wrk,
  a cost that grows when the server is slowed down, by the wrappers too.

For each stack and round a plain pass gives the server's CPU per request
(getrusage, less the clients' time). Then `apiphant+log` and `lean` run
timed: the stable seams of their request paths are wrapped, and each phase
sums the time inside its seams, less the seams nested in them and less the
wrappers' own cost (measured on an empty wrapped call, and in place: what a
second layer of wrappers adds). `front` is the connection greenlets' time
outside every seam (the loop, the answer's head); `hub` is the plain total
less all that (gevent's loop, epoll, greenlet switches). A seam that is gone
or never called stops the script: after a refactor, fix the seam here rather
than read a wrong table.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import copy  # noqa: E402
import cProfile  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import httptools  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

import server  # noqa: E402
import wrk  # noqa: E402
from apiphant import codec, current, dispatch, front as front_module, logs  # noqa: E402
from apiphant.server import listen  # noqa: E402

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'peers')
STACKS = ('apiphant', 'apiphant+log', 'loop', 'lean', 'apiphant+nodelay')
DEFAULT_STACKS = STACKS[:4]  # apiphant+nodelay: a what-if, TCP_NODELAY set on each connection
PHASES = ('read', 'parse', 'route', 'context', 'decode', 'call', 'encode', 'respond', 'log', 'write', 'front')
ABOUT = {
    'read': 'recv() on the raw socket (EAGAIN included)',
    'parse': 'httptools feed_data, with the llhttp callbacks',
    'route': 'the route table look-up (front.routes.get)',
    'context': 'request id, context enter + leave',
    'decode': 'codec.decode: orjson.loads, the Request',
    'call': 'the action (echo: request.copy(), one attribute)',
    'encode': 'codec.encode: orjson.dumps',
    'respond': "Application.respond's own code",
    'log': 'the AccessLog call (format, buffer)',
    'write': 'send() on the raw socket',
    'front': "connection greenlets' own Python: loop, answer, head",
    'hub': "gevent's loop, epoll, switches (total - the rest)",
}
PER_REQUEST = ('route', 'context', 'decode', 'call', 'encode', 'respond', 'log')  # at least once a request


class Phases:
    """Exclusive time per phase: a timed call's time less that of the timed
    calls made inside it. One stack serves every greenlet: no seam switches
    greenlets inside it (a wait inside one stops the script). `resume`
    brackets the greenlets' runs: each adds the time since it last resumed
    to its own account when it switches out (in `wait`) or ends."""

    def __init__(self, clock):
        self.clock = clock
        self.layers = 1  # 2 wraps every seam twice: what that adds is the wrappers' cost in place
        self.ns = {}  # phase: exclusive nanoseconds, the wrappers' cost in them
        self.calls = {}
        self.child_calls = {}  # phase: timed calls made inside it
        self.stack = []
        self.resume = 0
        self.running = {'front': 0, 'client': 0}  # ns the connection and client greenlets ran
        self.waits = {'front': 0, 'client': 0}

    def clear(self):
        for table in (self.ns, self.calls, self.child_calls, self.running, self.waits):
            for key in table:
                table[key] = 0
        self.stack.clear()

    def wrap(self, phase, function):
        for _ in range(self.layers):
            function = self._wrap(phase, function)
        return function

    def _wrap(self, phase, function):
        ns, calls, child_calls, stack, clock = self.ns, self.calls, self.child_calls, self.stack, self.clock
        for table in (ns, calls, child_calls):
            table.setdefault(phase, 0)

        def timed(*args):
            frame = [0, 0]  # time and count of the timed calls inside this one
            stack.append(frame)
            start = clock()
            try:
                return function(*args)
            finally:
                took = clock() - start
                stack.pop()
                ns[phase] += took - frame[0]
                calls[phase] += 1
                child_calls[phase] += frame[1]
                if stack:
                    stack[-1][0] += took
                    stack[-1][1] += 1
        return timed

    def switching(self, account, wait):
        """``wait`` (it switches to the hub) bracketed for greenlets of ``account``."""
        running, waits, clock, stack = self.running, self.waits, self.clock, self.stack

        def timed_wait(*args):
            if stack:
                sys.exit('phases.py: a greenlet switched inside a seam: update bench/phases.py')
            running[account] += clock() - self.resume
            waits[account] += 1
            try:
                return wait(*args)
            finally:
                self.resume = clock()
        return timed_wait

    def greenlet(self, account, function):
        """``function`` run as a greenlet's body, its run bracketed for ``account``."""
        def body(*args):
            self.resume = self.clock()
            try:
                return function(*args)
            finally:
                self.running[account] += self.clock() - self.resume
        return body


@dataclasses.dataclass(frozen=True)
class Overhead:
    inner: float  # ns a wrapper adds to the time it measures
    outer: float  # ns a wrapper adds to its caller's time
    bracket: float = 0  # ns a bracketed wait adds outside the greenlets' accounts
    in_place: float = None  # outer, measured in the timed passes (see main)


def calibrate(clock, count=200_000):
    """The wrappers' cost, from an empty function called bare and wrapped,
    nested in a timed call as the seams are; the median of five tries."""
    inner, outer, bracket = [], [], []
    for _ in range(5):
        phases = Phases(clock)

        def noop():
            pass
        wrapped = phases.wrap('empty', noop)
        loop = range(count)

        def calls(function):
            start = clock()
            for _ in loop:
                function()
            return clock() - start
        bare = calls(noop)
        phases.wrap('parent', calls)(wrapped)
        inner.append((phases.ns['empty'] - bare) / count)
        outer.append((phases.ns['parent'] + phases.ns['empty'] - bare) / count)
        waiting = phases.switching('client', noop)
        phases.resume = clock()
        whole = calls(waiting)
        phases.running['client'] += clock() - phases.resume
        bracket.append((whole - phases.running['client'] - bare) / count)
    return Overhead(statistics.median(inner), statistics.median(outer), statistics.median(bracket))


def corrected(phases, overhead):
    """Nanoseconds per phase with the wrappers' cost taken out, `front` included.
    A wrapper's cost in place (cold caches, real arguments) is above the
    empty call's: the excess is taken out of the time outside the seams,
    where it falls, and the inner cost is kept as calibrated."""
    outer = overhead.outer if overhead.in_place is None else overhead.in_place
    ns = {phase: phases.ns[phase] - phases.calls[phase] * overhead.inner
          - phases.child_calls[phase] * (outer - overhead.inner) for phase in phases.ns}
    top_level = sum(phases.calls.values()) - sum(phases.child_calls.values())
    ns['front'] = phases.running['front'] - sum(phases.ns.values()) - top_level * (outer - overhead.inner)
    return ns


# The seams: public or long-standing names only; missing() says which is gone.

def missing(what):
    sys.exit(f'phases.py: {what} is gone from apiphant or never called: update the seam in bench/phases.py')


class TimedRoutes(dict):
    """The front's route table, its get() timed as `route`."""
    __slots__ = ('get',)


class TimedRaw:
    """The non-blocking socket under gevent's, as the front reads and writes it, timed."""

    def __init__(self, raw, phases):
        self._raw = raw
        self.recv = phases.wrap('read', raw.recv)
        self.send = phases.wrap('write', raw.send)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class TimedSocket:
    """gevent's socket with its raw socket timed and its wait bracketed."""

    def __init__(self, sock, phases):
        self._real = sock
        self._sock = TimedRaw(sock._sock, phases)
        self._wait = phases.switching('front', sock._wait)
        self._read_event = sock._read_event

    def __getattr__(self, name):
        return getattr(self._real, name)


def patch_everywhere(original, replacement):
    """Put ``replacement`` wherever an apiphant module holds ``original`` (its
    module and those that imported it by name); the (module, name) pairs."""
    done = []
    for name, module in list(sys.modules.items()):
        if name == 'apiphant' or name.startswith('apiphant.'):
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, replacement)
                    done.append((module, attribute))
    return done


class Seams:
    """The seams of the request path, wrapped for one timed pass; undo() puts everything back."""

    def __init__(self, application, phases):
        self.application = application
        self.phases = phases
        self.undone = []
        self.saved = {}

    def apply(self):
        p, app = self.phases, self.application
        for module, name in ((codec, 'decode'), (codec, 'encode'), (current, 'enter'), (current, 'leave')):
            original = getattr(module, name, None)
            if original is None:
                missing(f'{module.__name__}.{name}')
            phase = 'context' if module is current else name
            self.undone += [(m, a, original) for m, a in patch_everywhere(original, p.wrap(phase, original))]
        parser = httptools.HttpRequestParser

        class TimedParser(parser):
            feed_data = p.wrap('parse', parser.feed_data)
        self.undone += [(m, a, parser) for m, a in patch_everywhere(parser, TimedParser)]
        for name in ('respond', 'new_request_id', 'routes'):
            if not hasattr(app, name):
                missing(f'Application.{name}')
            self.saved[name] = getattr(app, name)
        app.respond = p.wrap('respond', app.respond)
        app.new_request_id = p.wrap('context', app.new_request_id)
        # The front copies the table when it is made: the actions are wrapped before.
        app.routes = {path: dataclasses.replace(route, function=p.wrap('call', route.function))
                      for path, route in app.routes.items()}

    def apply_to_front(self, front):
        if not isinstance(getattr(front, 'routes', None), dict):
            missing('Front.routes (a dict)')
        routes = front.routes = TimedRoutes(front.routes)
        routes.get = self.phases.wrap('route', dict.get.__get__(routes))
        handle = self.phases.greenlet('front', front.server.handle)
        front.server.set_handle(lambda sock, address: handle(TimedSocket(sock, self.phases), address))

    def undo(self):
        for module, name, original in self.undone:
            setattr(module, name, original)
        self.undone = []
        del self.application.respond  # it hid the class's method
        self.application.new_request_id = self.saved['new_request_id']
        self.application.routes = self.saved['routes']


def timed_log(access_log, phases):
    """The AccessLog's call timed as `log`: a function, so the front calls it
    with nothing between; its tick (the reaper's write of what gathered) is
    timed as `log` too."""
    timed = phases.wrap('log', access_log.__call__)
    timed.flush = access_log.flush
    timed.tick = phases.wrap('log', access_log.tick)
    return timed


class LoopSeams:
    """The same seams in peers/httptools_loop.py, through its module's names:
    its parser, orjson, gevent.sleep, and the socket its handle is given
    (recv and sendall done on the raw socket, as gevent does them, with the
    waits bracketed)."""

    def __init__(self, phases):
        self.phases = phases
        self.module = None
        self.saved = {}

    def apply(self, module):
        p = self.phases
        self.module = module
        self.saved = {name: getattr(module, name) for name in ('HttpRequestParser', 'orjson', 'gevent')}
        parser = self.saved['HttpRequestParser']

        class TimedParser(parser):
            feed_data = p.wrap('parse', parser.feed_data)
        module.HttpRequestParser = TimedParser
        module.orjson = _Namespace(loads=p.wrap('decode', module.orjson.loads),
                                   dumps=p.wrap('encode', module.orjson.dumps))
        module.gevent = _Namespace(sleep=p.switching('front', module.gevent.sleep))

    def handle(self, handle):
        p = self.phases
        body = p.greenlet('front', handle)
        return lambda sock, address: body(LoopSocket(sock, p), address)

    def undo(self):
        for name, value in self.saved.items():
            setattr(self.module, name, value)


class _Namespace:
    def __init__(self, **names):
        vars(self).update(names)


class LoopSocket:
    """gevent's socket for the loop: recv and sendall as gevent does them, on the raw socket, timed."""

    def __init__(self, sock, phases):
        self._real = sock
        self._recv = phases.wrap('read', sock._sock.recv)
        self._send = phases.wrap('write', sock._sock.send)
        self._wait = phases.switching('front', sock._wait)
        self._read_event = sock._read_event

    def recv(self, size):
        while True:
            try:
                return self._recv(size)
            except BlockingIOError:
                self._wait(self._read_event)

    def sendall(self, data):
        sent = self._send(data)
        if sent < len(data):
            self._real.sendall(data[sent:])

    def __getattr__(self, name):
        return getattr(self._real, name)


# The load.

def wrk_request(port):
    return (b'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n'
            b'Content-Length: 18\r\n\r\n{"hello": "world"}' % (server.ECHO_PATH.encode(), port))


def client(address, count, phases, answers):
    """``count`` echo POSTs one after the other on one connection; the first answer is kept."""
    sock = socket.create_connection(address)
    # Connecting switched greenlets outside any bracket: what ran meanwhile is not the client's.
    phases.resume = phases.clock()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw, event = sock._sock, sock._read_event
    wait = phases.switching('client', sock._wait)
    request = wrk_request(address[1])
    try:
        for number in range(count):
            raw.send(request)  # 120 bytes: the kernel takes them whole
            answer = b''
            while True:
                wait(event)
                try:
                    chunk = raw.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise ConnectionError(f'closed after {number} answers: {answer!r}')
                answer += chunk
                end = answer.find(b'\r\n\r\n')
                if end >= 0:
                    at = answer.find(b'Content-Length: ') + 16
                    if len(answer) >= end + 4 + int(answer[at:answer.find(b'\r', at)]):
                        break
            if not answers:
                answers.append(answer)
    finally:
        sock.close()


def load_inproc(address, args, phases):
    answers = []
    each = args.requests // args.connections
    body = phases.greenlet('client', client)
    gevent.joinall([gevent.spawn(body, address, each, phases, answers) for _ in range(args.connections)],
                   raise_error=True)
    if not answers or not answers[0].startswith(b'HTTP/1.1 200 ') or b'"hello":"world"' not in answers[0]:
        sys.exit(f'phases.py: the echo answered {answers[:1]!r}')
    return each * args.connections, None


def load_wrk(address, args, phases):
    url = f'http://127.0.0.1:{address[1]}{server.ECHO_PATH}'
    result = wrk.run(url, args.duration, args.connections)
    if result.errors:
        sys.exit(f'phases.py: wrk counted {result.errors} errors')
    return result.requests, result.requests_per_second


@dataclasses.dataclass
class Pass:
    cpu_per_request: float  # µs of this process's CPU, the clients' time taken out
    requests_per_second: float
    served: int = 0  # requests the timed seams saw
    raw: Phases = None  # a copy of the timed pass's counts, corrected in the report


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start(stack, application, phases, seams, timed):
    """The stack's server on a new listener, started; its access log (or None) and stop function."""
    listener = listen('127.0.0.1', 0)
    if stack.startswith('apiphant'):
        access_log = logs.AccessLog(open(os.devnull, 'a')) if stack == 'apiphant+log' else None
        if timed:
            seams.apply()
            access_log = timed_log(access_log, phases) if access_log else None
        front = front_module.Front(application, listener, access_log=access_log)
        if timed:
            seams.apply_to_front(front)
        if stack == 'apiphant+nodelay':
            handle = front.server.handle

            def nodelay(sock, address):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return handle(sock, address)
            front.server.set_handle(nodelay)
        front.start()
        return listener.getsockname(), lambda: front.drain(1.0)
    if PEERS not in sys.path:
        sys.path.insert(0, PEERS)
    loop = importlib.import_module('httptools_loop')
    loop.NODELAY = loop.YIELD = stack == 'lean'
    loop.NAME = stack
    handle = loop.handle
    if timed:
        seams.apply(loop)
        handle = seams.handle(handle)
    stream = StreamServer(listener, handle)
    stream.start()
    return listener.getsockname(), stream.stop


def one_pass(stack, application, args, phases, seams=None, profile=None):
    timed = seams is not None
    address, stop = start(stack, application, phases, seams, timed)
    gc.collect()
    gc.freeze()  # as apiphant.server.serve does after start-up
    load = load_inproc if args.load == 'inproc' else load_wrk
    try:
        phases.clear()
        before, started = cpu(), time.perf_counter()
        if profile is not None:
            profile.enable()
        requests, requests_per_second = load(address, args, phases)
        if profile is not None:
            profile.disable()
        used, elapsed = cpu() - before, time.perf_counter() - started
    finally:
        stop()
        if timed:
            seams.undo()
    # The clients' time, and what bracketing their waits cost outside it.
    client = (phases.running['client'] + phases.waits['client'] * args.overhead.bracket) / 1e9
    if requests_per_second is None:
        requests_per_second = requests / elapsed  # clients and server on one core
    measured = Pass((used - client) / requests * 1e6, requests_per_second)
    if timed:
        apiphant = stack.startswith('apiphant')
        served = phases.calls['respond' if apiphant else 'decode']
        if served < requests:
            missing(f'Application.respond (called {served} times for {requests} requests)')
        for phase in PER_REQUEST if apiphant else ():
            if phases.calls[phase] < served:
                missing(f'the {phase} seam (called {phases.calls[phase]} times for {served} requests)')
        for phase in ('read', 'parse', 'write'):
            if not phases.calls[phase]:
                missing(f'the {phase} seam')
        measured.served = served
        measured.raw = copy.deepcopy(phases)
    return measured


def by_phase(timed, overhead):
    """µs and calls per request and phase, of each timed pass."""
    rows = []
    for each in timed:
        ns = corrected(each.raw, overhead)
        rows.append(({phase: ns.get(phase, 0) / each.served / 1e3 for phase in PHASES},
                     {phase: each.raw.calls.get(phase, 0) / each.served for phase in PHASES}))
    return rows


def report(plain, timed, overheads, args):
    lean = statistics.median(each.cpu_per_request for each in plain['lean']) if 'lean' in plain else None
    # In process the clients share the core: req/s is shown for the wrk load only.
    print(f'\n{"stack":<13} {"us/req":>7} {"/lean":>6} {"req/s":>8}  rounds (us/req)')
    for stack, passes in plain.items():
        value = statistics.median(each.cpu_per_request for each in passes)
        speed = f'{statistics.median(each.requests_per_second for each in passes):8.0f}' if args.load == 'wrk' \
            else f'{"-":>8}'
        print(f'{stack:<13} {value:7.2f} {value / lean if lean else 0:5.2f}x {speed}  '
              f'{" ".join(f"{each.cpu_per_request:.2f}" for each in passes)}')
    if not timed:
        return
    columns = {}  # stack: {phase: (us, calls)}, hub and total included
    for stack, passes in timed.items():
        rows = by_phase(passes, overheads[stack])
        total = statistics.median(each.cpu_per_request for each in plain[stack])
        column = {phase: (statistics.median(row[0][phase] for row in rows),
                          statistics.median(row[1][phase] for row in rows)) for phase in PHASES}
        column['hub'] = (total - sum(value for value, _ in column.values()), 0)
        column['total'] = (total, 0)
        columns[stack] = column
        overhead = overheads[stack]
        print(f'\n{stack}: a wrapper costs {overhead.inner:.0f} ns inside what it times, {overhead.outer:.0f} ns '
              f'to its caller empty, {overhead.in_place:.0f} ns in place; timed passes ran at '
              f'{statistics.median(each.cpu_per_request for each in passes):.2f} us/req ({args.clock} clock)')
    names = list(columns)
    print(f'\n{"phase":<8} ' + ' '.join(f'{name:>13} {"calls":>5}' for name in names)
          + (f' {"diff":>6}' if len(names) == 2 else '') + '  what (apiphant)')
    for phase in (*PHASES, 'hub', 'total'):
        cells = ' '.join(f'{columns[name][phase][0]:13.2f} {columns[name][phase][1] or 0:5.2f}'
                         if phase not in ('hub', 'total') else f'{columns[name][phase][0]:13.2f} {"":>5}'
                         for name in names)
        diff = f' {columns[names[1]][phase][0] - columns[names[0]][phase][0]:+6.2f}' if len(names) == 2 else ''
        about = ABOUT.get(phase, 'the plain passes (getrusage less the clients)')
        print(f'{phase:<8} {cells}{diff}  {about}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--load', choices=('inproc', 'wrk'), default='inproc')
    parser.add_argument('--requests', type=int, default=200_000, help='inproc: requests per pass')
    parser.add_argument('--duration', type=int, default=10, help='wrk: seconds per pass')
    parser.add_argument('--connections', type=int, default=50, help='kept-alive connections')
    parser.add_argument('--rounds', type=int, default=3, help='rounds of every pass; medians are shown')
    parser.add_argument('--only', action='append', choices=STACKS, metavar='STACK', help='plain passes of these')
    parser.add_argument('--clock', choices=('thread', 'wall'), default='thread',
                        help='thread: the thread\'s CPU time (a syscall a reading; a neighbour on core 0 '
                             'does not count); wall: perf_counter_ns (cheap, but counts what neighbours take)')
    parser.add_argument('--profile', action='store_true', help='and one cProfile pass of apiphant+log')
    args = parser.parse_args()
    if args.load == 'wrk' and not shutil.which('wrk'):
        sys.exit('wrk is not installed: run bash bench/setup.sh')
    os.sched_setaffinity(0, {server.CORE})
    server.raise_fd_limit(args.connections * 2 + 64)
    clock = time.perf_counter_ns if args.clock == 'wall' else time.thread_time_ns
    args.overhead = calibrate(clock)
    application = dispatch.app(str(server.EXAMPLE))
    phases = Phases(clock)
    seams = Seams(application, phases)
    stacks = args.only or DEFAULT_STACKS
    load = (f'{args.connections} in-process clients, {args.requests} requests' if args.load == 'inproc' else
            ' '.join(wrk.command('URL', args.duration, args.connections)[3:]))
    print(f'in process on core {server.CORE}: {", ".join(stacks)}; {load}', flush=True)
    split = {stack: seams if stack.startswith('apiphant') else LoopSeams(phases)
             for stack in ('lean', 'apiphant+log') if stack in stacks}
    plain, timed, doubled = {stack: [] for stack in stacks}, {stack: [] for stack in split}, \
        {stack: [] for stack in split}
    for number in range(1, args.rounds + 1):
        for stack in stacks:
            plain[stack].append(one_pass(stack, application, args, phases))
        for stack, its_seams in split.items():
            timed[stack].append(one_pass(stack, application, args, phases, its_seams))
            phases.layers = 2
            doubled[stack].append(one_pass(stack, application, args, phases, its_seams))
            phases.layers = 1
        print(f'round {number}/{args.rounds}: ' + ', '.join(f'{stack} {passes[-1].cpu_per_request:.2f}'
                                                            for stack, passes in plain.items()) + ' us/req',
              file=sys.stderr, flush=True)
    # What a second layer of wrappers adds, per wrapped call: one wrapper's cost in place.
    overheads = {stack: dataclasses.replace(args.overhead, in_place=statistics.median(
        (twice.cpu_per_request - once.cpu_per_request) * 1e3 / (sum(once.raw.calls.values()) / once.served)
        for once, twice in zip(timed[stack], doubled[stack]))) for stack in split}
    report(plain, timed, overheads, args)
    if args.profile:
        profile = cProfile.Profile()
        one_pass('apiphant+log', application, args, phases, profile=profile)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats('tottime').print_stats(25)
        print('\ncProfile of one plain apiphant+log pass, by own time (gevent switches blur the callers):')
        print('\n'.join(out.getvalue().splitlines()[6:]))


if __name__ == '__main__':
    main()
