"""apiphant's HTTP/1.1 front: gevent's StreamServer and llhttp (through
httptools), strict about framing, with deadlines, for the Application.

One greenlet per connection reads, feeds the parser and answers the requests
it completed, in order, in one write. Rules:

1. Framing is llhttp's, strict (RFC 9112): Content-Length with
   Transfer-Encoding, a duplicate or malformed Content-Length, a
   Transfer-Encoding not ending in chunked, bare LF, obs-fold, bad header
   names and bad chunk sizes are 400 and the connection is closed. A
   transfer coding other than chunked is 501.
   HTTP/1.1 needs exactly one Host header; HTTP/1.0 has no chunked bodies.
   A content coding (``Content-Encoding: gzip``) is 415.
2. Limits: request line 8,190 bytes (414); a header 8,190 bytes, 100
   headers, or a head of 64 KiB (431); the body limit of the application (413,
   answered before the body is read, instead of ``100 Continue``).
3. Deadlines, kept by one reaper greenlet ticking each second: the head must
   arrive whole within ``head_timeout`` of its first byte (however slowly
   bytes trickle), and a new connection's first byte within ``head_timeout``
   too; the body within ``body_timeout`` plus a second per MIN_BODY_RATE
   bytes received (a body trickling in is cut, a large one arriving steadily
   is not); a keep-alive connection may idle ``keepalive_timeout``; a
   response whose reader takes no byte for ``body_timeout`` is cut, and the
   cut is logged.
4. What the front rejects itself is an ApiError, so it has the
   application's JSON shape; it is answered after the requests completed
   before it, and closes the connection. Most are raised in llhttp's
   callbacks (414, 431, 413 ...) and come back as the cause of the parser's
   error; serve() makes the 400 for what llhttp refuses to parse and the 431
   for a head past 64 KiB over several reads.
5. Every answer says ``X-Content-Type-Options: nosniff`` and, unless it
   says otherwise, ``Cache-Control: no-store``.
6. An answer that goes on after its head (an ``apiphant.stream.Stream``, a
   watch's events) is the connection's last: its head is sent (chunked,
   ``Connection: close``), the stream takes the socket and the connection's
   greenlet ends. A drain ends the streams first; a stream asked for during
   a drain is closed unanswered, so that a proxy tries another process.
"""
import io
import logging
import sys
import time
from urllib.parse import unquote_to_bytes

import gevent
from gevent.server import StreamServer
from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser, parse_url

from apiphant.current import Headers
from apiphant.errors import NO_CONTENT, STATUS_LINES, ApiError, PayloadTooLarge
from apiphant.limits import Proxies
from apiphant.stream import Stream

__all__ = ['Front', 'Connection', 'Message', 'head', 'wsgi_environ']

log = logging.getLogger('apiphant')

MAX_LINE = 8190
MAX_HEADER = 8190
MAX_HEADERS = 100
MAX_HEAD = 64 << 10
FOREVER = float('inf')
DRAIN_GRACE = 1.0
MIN_BODY_RATE = 8192  # bytes a second a body may not fall below, after its first body_timeout
SEND_CHUNK = 256 << 10  # what one send of a large answer offers the kernel

_CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'
# The answer to nearly every request, as one % format: an answer with
# content and no extra headers, on a kept-alive HTTP/1.1 connection, to a
# method other than HEAD. It is what head() makes for such an answer (a test
# pins the two together).
_ANSWER = (b'HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n'
           b'X-Request-Id: %s\r\nDate: %s\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n%s')
_CORS_ANSWER = b'HTTP/1.1 %s\r\n%s' + _ANSWER[len(b'HTTP/1.1 %s\r\n'):]  # the same, with the CORS lines
_METHODS = {m.encode(): m for m in ('POST', 'GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')}
_STATUS = {line: line.encode() for line in STATUS_LINES.values()}
_NO_CONTENT = {_STATUS[line] for line in NO_CONTENT}  # dispatch gives them no body
_CLOSE_QUIETLY = object()  # a rejection that closes without an answer of its own


def head(status, extra, request_id, payload, date, *, head_only=False, keep_alive=True, http10=False,
         streamed=False):
    """A whole response: the status line (bytes), the ``extra`` headers (str
    pairs, checked by the application: no line breaks), the JSON type unless
    ``extra`` names one, the length (neither for a 204 or a 304; ``streamed``: chunked
    instead, or, in HTTP/1.0, up to the close), the request id (unless None), the date,
    nosniff, no-store unless ``extra`` says how to cache, how the connection
    goes on, and ``payload`` unless ``head_only``."""
    parts = [b'HTTP/1.1 ', status, b'\r\n']
    typed = cached = False
    for name, value in extra:
        lower = name.lower()
        typed = typed or lower == 'content-type'
        cached = cached or lower == 'cache-control'
        parts += (name.encode('latin-1'), b': ', value.encode('latin-1'), b'\r\n')
    if status not in _NO_CONTENT:  # RFC 9110 8.6: no content, so no Content-Length
        if not typed:
            parts.append(b'Content-Type: application/json\r\n')
        if not streamed:
            parts += (b'Content-Length: ', b'%d' % len(payload), b'\r\n')
        elif not http10:
            parts.append(b'Transfer-Encoding: chunked\r\n')
    if request_id is not None:
        parts += (b'X-Request-Id: ', request_id, b'\r\n')
    parts += (b'Date: ', date, b'\r\nX-Content-Type-Options: nosniff\r\n')
    if not cached:
        parts.append(b'Cache-Control: no-store\r\n')
    if not keep_alive:
        parts.append(b'Connection: close\r\n')
    elif http10:
        parts.append(b'Connection: keep-alive\r\n')
    parts.append(b'\r\n')
    if not head_only:
        parts.append(payload)
    return b''.join(parts)


class Front:
    """Serves ``application`` on ``listener``, a listening socket."""

    def __init__(self, application, listener, *, access_log=None, head_timeout=10.0,
                 body_timeout=10.0, keepalive_timeout=75.0, heartbeat=None, trusted_proxies=()):
        self.app = application
        self.metrics = application.metrics
        self.proxies = Proxies(trusted_proxies)
        self.routes = {path.encode('latin-1'): route for path, route in application.routes.items()}
        self.cors = application.cors  # an apiphant.cors.Cors, or None: off
        self.max_body_size = application.max_body_size
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self.access_log = access_log
        # Its bound __call__: CPython calls a bound method for less than an object with __call__.
        self.log_request = None if access_log is None else access_log.__call__
        self.heartbeat = heartbeat
        self.connections = set()
        self.streams = set()  # apiphant.stream.Stream: answers going on, which no connection greenlet holds
        self.draining = False
        self.grace_end = FOREVER
        self._tick_clock(time.monotonic())
        self.date = b''
        self._tick_date()
        self.server = StreamServer(listener, self._handle)
        self._reaper = None

    @property
    def address(self):
        return self.server.address

    def start(self):
        self.server.start()
        self._reaper = gevent.spawn(self._reap)

    def _handle(self, sock, address):
        metrics = self.metrics
        if metrics is None:
            Connection(self, sock, address).serve()
            return
        metrics.connection_opened()
        try:
            Connection(self, sock, address).serve()
        finally:
            metrics.connection_closed()

    def _tick_clock(self, now):
        """The coarse clock moves on, and with it the deadlines of a head,
        a body or an idle keep-alive connection that begin this second (a
        request pays no arithmetic for them)."""
        self.now = now
        self.head_due = now + self.head_timeout
        self.body_due = now + self.body_timeout
        self.idle_due = self.grace_end if self.draining else now + self.keepalive_timeout

    def _tick_date(self):
        self.date = time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime()).encode()

    def _reap(self):
        """Each second: the coarse clock and the Date header move on, and
        connections past their deadline are ended."""
        while True:
            gevent.sleep(1.0)
            self._tick_clock(time.monotonic())
            self._tick_date()
            self._end_overdue(self.now)
            if self.access_log is not None:
                self.access_log.tick()
            if self.metrics is not None:
                self.metrics.tick()
            if self.heartbeat is not None:
                self.heartbeat()

    def route(self, url):
        """``(path, route)`` of a request target: its path without the
        query, in the origin form (``/path``) or the absolute form
        (``http://host/path``); the route None when none has that path."""
        query = url.find(b'?')
        path = url if query < 0 else url[:query]
        if path[:1] != b'/':
            try:
                path = parse_url(url).path or b''
            except HttpParserError:
                path = b''
        return path, self.routes.get(path)

    def _end_overdue(self, now):
        for connection in [c for c in self.connections if c.deadline < now]:
            connection.end()

    def drain(self, timeout):
        """Stop accepting; let requests in flight finish for up to ``timeout``
        seconds, answered with ``Connection: close``; end the idle keep-alive
        connections after a grace of a second (a client sending on one just
        then gets its answer, with ``Connection: close``, rather than a reset);
        then end what is left."""
        self.draining = True
        self.server.close()
        for stream in list(self.streams):  # ended cleanly: their clients resume elsewhere
            stream.end()
        started = time.monotonic()
        self.grace_end = self.idle_due = started + min(DRAIN_GRACE, timeout)
        for connection in list(self.connections):
            if connection.state is IDLE:
                connection.deadline = self.grace_end
        while self.connections and time.monotonic() < started + timeout:
            gevent.sleep(0.05)
            self._end_overdue(time.monotonic())
        if self.connections:
            log.warning('%d connections still busy after %ss; closing them', len(self.connections), timeout)
            for connection in list(self.connections):
                connection.end()
        if self._reaper is not None:
            self._reaper.kill()
        if self.access_log is not None:
            self.access_log.flush()


class Message:
    """One request, filled in by llhttp's callbacks as its bytes arrive, then
    kept until it is answered. ``length``, ``coding``, ``expect``, ``hosts``,
    ``encoding`` and ``connection`` are for the framing, read while the head
    arrives. Every field is set when it is made: a slot is read faster than a
    default looked up on the class."""

    __slots__ = ('url', 'headers', 'body', 'method', 'keep_alive', 'http10', 'hosts', 'length', 'coding', 'expect',
                 'encoding', 'connection', 'content_type', 'given_id', 'forwarded_for', 'real_ip', 'origin',
                 'authorization')

    def __init__(self, url):
        self.url = url
        self.headers = []  # (name, value) bytes, as they came
        self.body = b''
        self.hosts = 0
        self.keep_alive = True
        self.http10 = self.connection = False
        self.method = self.length = self.coding = self.expect = self.encoding = self.content_type = None
        self.given_id = self.forwarded_for = self.real_ip = self.origin = self.authorization = None


# Headers the front itself reads, by lower-case name (0: one it does not read).
(_LENGTH, _CODING, _EXPECT, _ID, _FORWARDED_FOR, _REAL_IP, _HOST, _TYPE, _ENCODING, _ORIGIN, _AUTHORIZATION,
 _CONNECTION) = range(1, 13)
_WATCHED = {b'content-length': _LENGTH, b'transfer-encoding': _CODING, b'expect': _EXPECT, b'x-request-id': _ID,
            b'x-forwarded-for': _FORWARDED_FOR, b'x-real-ip': _REAL_IP, b'host': _HOST, b'content-type': _TYPE,
            b'content-encoding': _ENCODING, b'origin': _ORIGIN, b'authorization': _AUTHORIZATION,
            b'connection': _CONNECTION, b'proxy-connection': _CONNECTION}
# The slot of every header name met, as clients send it:
# one look-up a header, a name lower-cased the first time only. At most
# _NAMES short names are kept, so that clients inventing names cannot grow
# it; past that, a name not kept is lower-cased each time.
_SLOTS = {**_WATCHED, **{name.title(): slot for name, slot in _WATCHED.items()},
          b'X-Request-ID': _ID, b'X-Real-IP': _REAL_IP}
_NAMES = 2000


def _slot(name):
    slot = _WATCHED.get(name.lower(), 0)
    if len(_SLOTS) < _NAMES and len(name) <= 64:
        _SLOTS[name] = slot
    return slot


# What a connection is doing, for its deadline (see Connection).
IDLE, HEAD, BODY = 'idle', 'head', 'body'


class Connection:
    """One client connection: its parser, the request being received and
    the requests it completed.

    ======= =============================================== ==============================
    state   entered                                         deadline
    ======= =============================================== ==============================
    idle    opened                                          now + head_timeout
    head    the first byte of a request                     now + head_timeout, for the
                                                            whole head
    body    the head is whole (on_headers_complete)         then + body_timeout + a
                                                            second per MIN_BODY_RATE
                                                            bytes received
    idle    the request is whole (on_message_complete)      none until it is answered
    idle    answered, nothing of the next received          now + keepalive_timeout, or
                                                            the drain's grace end
    ======= =============================================== ==============================

    Answering comes between two reads, whatever the state: no deadline while
    the application runs, ``body_timeout`` from each byte a slow reader takes
    while it holds a send; then the deadline of the state goes on (a next
    request begun in the same read keeps its own). The reaper ends a
    connection past its deadline.
    """

    __slots__ = ('front', 'sock', 'raw_send', 'client', 'via_proxy', 'parser', 'state', 'deadline', 'message', 'done',
                 'head_size', 'body_start', 'stream')

    def __init__(self, front, sock, address):
        self.front = front
        self.sock = sock
        # gevent's socket wraps a non-blocking one; its send skips gevent's layers.
        self.raw_send = getattr(sock, '_sock', sock).send
        self.client = address[0] if isinstance(address, tuple) else str(address)
        self.via_proxy = bool(front.proxies) and front.proxies.trusts(self.client)
        self.parser = HttpRequestParser(self)
        self.state = IDLE
        self.deadline = front.head_due  # a first byte is due at once
        self.message = None  # the request being received
        self.done = []  # the requests received whole, waiting for their answers
        self.head_size = 0
        self.body_start = 0.0
        self.stream = None  # an answer that goes on after its head (apiphant.stream)

    # llhttp's callbacks. What they raise, llhttp raises again as the
    # HttpParserCallbackError that serve() catches.

    def on_url(self, part):
        message = self.message
        if message is not None:  # the rest of a target that came in pieces
            message.url += part
            if len(message.url) > MAX_LINE:
                raise ApiError(414)
            return
        # The first callback of every request (no on_message_begin: one call less).
        self.message = Message(part)
        if self.state is IDLE:  # a request that follows another in the same read
            self.state = HEAD
            self.deadline = self.front.head_due
            self.head_size = 0
        if len(part) > MAX_LINE:
            raise ApiError(414)

    def on_header(self, name, value):
        message = self.message
        message.headers.append((name, value))  # sizes are checked once the head is whole
        slot = _SLOTS.get(name)
        if slot is None:  # a name not met yet, as it is written
            slot = _slot(name)
        if slot:  # the usual ones first: Host, Content-Type, Content-Length
            if slot == _HOST:
                message.hosts += 1
            elif slot == _TYPE:
                message.content_type = value
            elif slot == _LENGTH:
                message.length = value  # llhttp refuses a second one
            elif slot == _CODING:
                message.coding = value if message.coding is None else message.coding + b', ' + value
            elif slot == _EXPECT:
                message.expect = value
            elif slot == _ID:
                message.given_id = value
            elif slot == _ENCODING:
                message.encoding = value
            elif slot == _ORIGIN:
                message.origin = value
            elif slot == _AUTHORIZATION:
                if message.authorization is not None:
                    raise ApiError(400)  # two credentials: which one would be checked is anyone's guess
                message.authorization = value
            elif slot == _FORWARDED_FOR:  # each proxy may add its own line
                message.forwarded_for = value if message.forwarded_for is None else message.forwarded_for + b',' + value
            elif slot == _REAL_IP:
                message.real_ip = value
            else:
                message.connection = True

    def on_headers_complete(self):
        message = self.message
        if len(message.headers) > MAX_HEADERS or self.head_size > MAX_HEADER and _too_large(message, self.head_size):
            raise ApiError(431)
        parser = self.parser
        # llhttp takes HTTP/0.9, 1.0, 1.1 and 2.0 only, and keeps only 1.1
        # alive without a Connection header: then the version is known
        # without asking for it (a string formatted at each call).
        version = '1.1' if not message.connection and parser.should_keep_alive() else parser.get_http_version()
        if version != '1.1':
            if version != '1.0':
                raise ApiError(505)
            message.http10 = True
            if message.coding is not None:
                raise ApiError(400)  # chunked is HTTP/1.1's: a 1.0 peer cannot frame it
        elif message.hosts != 1:
            raise ApiError(400)  # RFC 9112 3.2: exactly one Host
        if len(message.url) > MAX_LINE - 30 and len(message.url) + len(parser.get_method()) + 10 > MAX_LINE:
            raise ApiError(414)  # the request line, method and version included
        if message.encoding is not None and message.encoding.strip().lower() != b'identity':
            raise ApiError(415)
        coding = message.coding
        if coding is not None and coding.lower() != b'chunked':
            if coding.rpartition(b',')[2].strip().lower() != b'chunked':
                raise ApiError(400)  # the body's end cannot be known: the framing is ambiguous
            raise ApiError(501)  # chunked after a coding apiphant does not speak
        length = message.length
        if length is not None and int(length) > self.front.max_body_size:
            raise PayloadTooLarge()
        if message.expect is not None and message.expect.lower() == b'100-continue' and (coding or length):
            self.sock.sendall(_CONTINUE)
        self.state = BODY
        self.body_start = self.front.now
        self.deadline = self.front.body_due

    def on_body(self, chunk):
        message = self.message
        body = message.body + chunk if message.body else chunk
        if len(body) > self.front.max_body_size:
            raise PayloadTooLarge()
        message.body = body
        if len(body) >= MIN_BODY_RATE:  # a second more per MIN_BODY_RATE bytes received
            self.deadline = self.body_start + self.front.body_timeout + len(body) // MIN_BODY_RATE

    def on_message_complete(self):
        message = self.message
        parser = self.parser
        message.method = parser.get_method()
        message.keep_alive = parser.should_keep_alive()
        self.done.append(message)
        self.message = None
        self.state = IDLE
        self.deadline = FOREVER

    # the connection's loop

    def serve(self):
        front = self.front
        sock = self.sock
        recv = self._receiver()
        feed = self.parser.feed_data
        front.connections.add(self)
        try:
            while True:
                try:
                    data = recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if self.state is IDLE:
                    self.state = HEAD
                    self.deadline = front.head_due
                    self.head_size = 0
                self.head_size += len(data)
                reject = None
                try:
                    feed(data)
                except HttpParserUpgrade:  # never done: answer what came before, then close
                    reject = _CLOSE_QUIETLY if self.done else ApiError(400)
                except HttpParserCallbackError as error:
                    # llhttp raises it while handling what a callback raised:
                    # the callback's exception is its __context__.
                    reject = self._rejection(error.__context__)
                    if reject is None:
                        return
                except HttpParserError:
                    reject = ApiError(400)
                if reject is None and self.state is HEAD and self.head_size > MAX_HEAD:
                    reject = ApiError(431)
                if self.done or reject is not None:
                    resume = self.deadline  # a next request's, begun in the same read
                    self.deadline = FOREVER
                    if not self._answer_all(reject):
                        return
                    if self.state is IDLE:
                        self.deadline = front.idle_due  # the drain's grace end while it drains
                    else:
                        self.deadline = resume
        finally:
            front.connections.discard(self)
            stream = self.stream
            if stream is not None and stream.raw is None:  # its head was never sent
                stream.end(cut=True)
            if stream is None or stream.raw is None:
                try:
                    sock.close()
                except OSError:
                    pass

    @staticmethod
    def _rejection(cause):
        """The ApiError a callback raised; None (close) when the socket
        failed (sending 100 Continue); a 500 for a bug."""
        if isinstance(cause, ApiError):
            return cause
        if isinstance(cause, OSError):
            return None
        log.error('the HTTP front failed on a request', exc_info=cause)
        return ApiError(500)

    def _receiver(self):
        """recv(), waiting first: after an answer the next request is almost
        never there yet, and gevent's recv would try, fail with EAGAIN (a
        syscall and an exception) and only then wait. Every read passing
        through the hub also keeps connections fair: one whose next request
        is always there already (pipelining) takes its turn like the others."""
        sock = self.sock
        raw = getattr(sock, '_sock', None)
        wait = getattr(sock, '_wait', None)
        event = getattr(sock, '_read_event', None)
        if raw is None or wait is None or event is None:  # not a gevent socket as we know it
            return sock.recv
        raw_recv = raw.recv

        def recv(size):
            while True:
                wait(event)
                try:
                    return raw_recv(size)
                except BlockingIOError:
                    pass
        return recv

    def _answer_all(self, reject):
        """Answer what the parser completed, in order, then the rejection
        (an ApiError, or _CLOSE_QUIETLY), in one write; False when the
        connection ends. A request that asks to close is the last one
        answered."""
        done = self.done
        if len(done) == 1 and reject is None:
            out, close = self._answer(done[0], last=True, must_close=False)
            done.clear()
        else:
            self.done = []
            answers = []
            close = False
            last = len(done) - 1
            for index, message in enumerate(done):
                answer, close = self._answer(message, last=index == last and reject is None,
                                             must_close=index == last and reject is _CLOSE_QUIETLY)
                answers.append(answer)
                if close:
                    break
            if reject is not None and reject is not _CLOSE_QUIETLY and not close:
                if self.front.metrics is not None:
                    self.front.metrics.rejected(reject.status)
                extra = reject.headers
                if self.front.cors is not None and self.message is not None and self.message.origin is not None:
                    extra = self.front.cors.add(extra, self.message.origin)  # so that the page can read it
                answers.append(head(_STATUS.get(reject.status_line) or reject.status_line.encode(), extra,
                                    None, reject.body(), self.front.date, keep_alive=False))
            close = close or reject is not None
            out = b''.join(answers)
        try:
            sent = self.raw_send(out)  # the kernel takes a small answer whole: no need to wait
        except BlockingIOError:
            sent = 0
        except OSError:
            return False
        if sent < len(out) and not self._send_rest(out, sent):
            return False
        if self.stream is not None:  # the stream takes the connection; this greenlet ends
            self.front.connections.discard(self)
            self.stream.attach(self.sock, streams=self.front.streams, client=self.client)
            return False
        return not close

    def _send_rest(self, out, sent):
        """Send what the kernel did not take at once, as the reader takes
        it: each piece it takes renews the deadline. False when cut (logged)."""
        front = self.front
        view = memoryview(out)
        send = self.sock.send
        try:
            while sent < len(out):
                self.deadline = front.body_due
                sent += send(view[sent:sent + SEND_CHUNK])
        except OSError:
            log.warning('%s took no byte of its answer for %ss: cut after %d of %d bytes', self.client,
                        front.body_timeout, sent, len(out))
            return False
        return True

    def _answer(self, message, *, last, must_close):
        """The response to ``message`` and whether the connection closes after it."""
        front = self.front
        app = front.app
        log_request = front.log_request
        metrics = front.metrics
        started = time.perf_counter() if log_request is not None or metrics is not None else 0
        path = message.url
        route = front.routes.get(path)
        if route is None:  # a query, the absolute form, or no such route
            path, route = front.route(path)
        method = _METHODS.get(message.method) or message.method.decode('latin-1')
        given_id = message.given_id
        client = front.proxies.client(self.client, message.forwarded_for, message.real_ip) if self.via_proxy \
            else self.client
        request_id = app.new_request_id() if given_id is None else app.request_id(given_id.decode('latin-1'))
        # The arguments of the request's RequestContext, made only if something looks.
        if route is not None and route.raw_environ:
            context = (request_id, route, client, None, None,
                       lambda: wsgi_environ(message, method, client, front.address), message.headers)
        else:
            context = (request_id, route, client, None, None, None, message.headers)
        if metrics is not None:
            metrics.request_started()
        status, extra, payload = app.respond(route, method, message.body, message.content_type, context,
                                             message.authorization)
        if started:
            took = time.perf_counter() - started
            if metrics is not None:
                metrics.request_finished(route.path if route is not None else None, status, took)
            if log_request is not None:
                log_request(client, method, path, status, took, request_id)
        close = not message.keep_alive or must_close or (last and front.draining)  # draining: after the last answer
        status = _STATUS.get(status) or status.encode('latin-1')
        request_id = request_id.encode('latin-1')
        if type(payload) is Stream:
            if front.draining:  # it would end at once: closed unanswered, a proxy tries the next process
                payload.end(cut=True)
                return b'', True
            self.stream = payload
            payload.chunked = not message.http10
            if front.cors is not None and message.origin is not None:
                extra = front.cors.add(extra, message.origin)
            return head(status, extra, request_id, b'', front.date, keep_alive=False, http10=message.http10,
                        streamed=True), True
        if front.cors is not None and message.origin is not None:
            if payload and not extra and not close and not message.http10 and message.method != b'HEAD':
                return _CORS_ANSWER % (status, front.cors.lines(message.origin), len(payload), request_id,
                                       front.date, payload), False
            extra = front.cors.add(extra, message.origin)
        if payload and not extra and not close and not message.http10 and message.method != b'HEAD':
            return _ANSWER % (status, len(payload), request_id, front.date, payload), False
        return head(status, extra, request_id, payload, front.date, head_only=message.method == b'HEAD',
                    keep_alive=not close, http10=message.http10), close

    def end(self):
        """End the connection now, from another greenlet (the reaper, a drain)."""
        try:
            self.sock.shutdown(2)
        except OSError:
            pass


def _too_large(message, received):
    """Whether a header of ``message`` is longer than MAX_HEADER, or its
    head than MAX_HEAD (a head whole in one read of ``received`` bytes,
    which the check after feed() did not see)."""
    return any(len(name) + len(value) > MAX_HEADER for name, value in message.headers) or (
        received > MAX_HEAD and _head_length(message) > MAX_HEAD)


def _head_length(message):
    """The bytes of ``message``'s head, as it came (CRLFs and ': ' counted)."""
    return len(message.url) + 20 + sum(len(name) + len(value) + 4 for name, value in message.headers)


def wsgi_environ(message, method, client, server):
    """A WSGI environ of ``message``, for the ``@raw_environ`` actions that want one."""
    url = message.url
    path, _, query = url.partition(b'?')
    environ = {
        'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': unquote_to_bytes(path).decode('latin-1'),
        'QUERY_STRING': query.decode('latin-1'), 'RAW_URI': url.decode('latin-1'),
        'SERVER_NAME': str(server[0]), 'SERVER_PORT': str(server[1]),
        'SERVER_PROTOCOL': 'HTTP/1.0' if message.http10 else 'HTTP/1.1',
        'REMOTE_ADDR': client, 'CONTENT_LENGTH': str(len(message.body)),
        'wsgi.version': (1, 0), 'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(message.body),
        'wsgi.errors': sys.stderr, 'wsgi.multithread': False, 'wsgi.multiprocess': False,
        'wsgi.run_once': False, 'wsgi.input_terminated': True,
    }
    for name, value in Headers.from_raw(message.headers).items():
        if '_' in name:
            continue  # X_Forwarded_For would pass for X-Forwarded-For in the environ
        key = name.upper().replace('-', '_')
        if key == 'CONTENT_TYPE':
            environ[key] = value
        elif key not in ('CONTENT_LENGTH', 'TRANSFER_ENCODING'):
            environ['HTTP_' + key] = value
    return environ
