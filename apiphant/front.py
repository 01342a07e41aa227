"""apiphant's HTTP/1.1 front: gevent's StreamServer and llhttp (through
httptools), strict about framing, with deadlines, for the Application.

One greenlet per connection reads, feeds the parser and answers the requests
it completed, in order, in one write. Rules:

1. Framing is llhttp's, strict (RFC 9112): Content-Length with
   Transfer-Encoding, a duplicate or malformed Content-Length, a
   Transfer-Encoding not ending in chunked, bare LF, obs-fold, bad header
   names and bad chunk sizes are 400 and the connection is closed. A
   transfer coding other than chunked is 501.
2. Limits: request line 8,190 bytes (414); a header 8,190 bytes, 100
   headers, or a head of 64 KiB (431); the body limit of the application (413,
   answered before the body is read, instead of ``100 Continue``).
3. Deadlines, kept by one reaper greenlet ticking each second: the head must
   arrive whole within ``head_timeout`` of its first byte (however slowly
   bytes trickle), the body must not stall for ``body_timeout``, a keep-alive
   connection may idle ``keepalive_timeout``. A response that cannot be sent
   within ``body_timeout`` ends the connection too.
4. Errors the front answers itself have the application's JSON shape.
"""
import io
import logging
import sys
import time
from urllib.parse import unquote_to_bytes

import gevent
from gevent.server import StreamServer
from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, parse_url

from apiphant.codec import encode
from apiphant.current import Headers
from apiphant.errors import STATUS_LINES

__all__ = ['Front']

log = logging.getLogger('apiphant')

MAX_LINE = 8190
MAX_HEADER = 8190
MAX_HEADERS = 100
MAX_HEAD = 64 << 10
FOREVER = float('inf')
DRAIN_GRACE = 1.0

_CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'
_ANSWER = (b'HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n'
           b'X-Request-Id: %s\r\nDate: %s\r\n\r\n%s')
_METHODS = {m.encode(): m for m in ('POST', 'GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')}
_STATUS = {line: line.encode() for line in STATUS_LINES.values()}


class _Reject(Exception):
    """The request cannot be served: answer ``status`` and close."""

    def __init__(self, status):
        self.status = status


def _error_body(status):
    return encode({'error': STATUS_LINES[status]})


class Front:
    """Serves ``application`` on ``listener``, a listening socket."""

    def __init__(self, application, listener, *, access_log=None, head_timeout=10.0,
                 body_timeout=10.0, keepalive_timeout=75.0, heartbeat=None):
        self.app = application
        self.routes = {path.encode('latin-1'): route for path, route in application.routes.items()}
        self.max_body_size = application.max_body_size
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self.access_log = access_log
        self.heartbeat = heartbeat
        self.connections = set()
        self.draining = False
        self.grace_end = FOREVER
        self.now = time.monotonic()
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
        Connection(self, sock, address).serve()

    def _tick_date(self):
        self.date = time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime()).encode()

    def _reap(self):
        """Each second: the coarse clock and the Date header move on, and
        connections past their deadline are ended."""
        while True:
            gevent.sleep(1.0)
            self.now = now = time.monotonic()
            self._tick_date()
            for connection in [c for c in self.connections if c.deadline < now]:
                connection.end()
            if self.access_log is not None:
                self.access_log.flush()
            if self.heartbeat is not None:
                self.heartbeat()

    def drain(self, timeout):
        """Stop accepting; let requests in flight finish for up to ``timeout``
        seconds, answered with ``Connection: close``; end the idle keep-alive
        connections after a grace of a second (a client sending on one just
        then gets its answer, with ``Connection: close``, rather than a reset);
        then end what is left."""
        self.draining = True
        self.server.close()
        started = time.monotonic()
        self.grace_end = started + min(DRAIN_GRACE, timeout)
        for connection in list(self.connections):
            if connection.idle:
                connection.deadline = self.grace_end
        while self.connections and time.monotonic() < started + timeout:
            gevent.sleep(0.05)
            now = time.monotonic()
            for connection in [c for c in self.connections if c.deadline < now]:
                connection.end()
        if self.connections:
            log.warning('%d connections still busy after %ss; closing them', len(self.connections), timeout)
            for connection in list(self.connections):
                connection.end()
        if self._reaper is not None:
            self._reaper.kill()
        if self.access_log is not None:
            self.access_log.flush()


class AccessLog:
    """One line per request, buffered: written when 64 KiB have gathered and
    at each tick of the reaper, so a request never waits on the disk."""

    def __init__(self, stream):
        self.stream = stream
        self.lines = []
        self.size = 0
        self.second = None
        self.stamp = ''

    def __call__(self, client, method, path, status, took, request_id):
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.stamp = time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(second))
        line = '%s %s %s %s %s %.1fms %s\n' % (self.stamp, client, method, path, status[:3], took * 1000, request_id)
        self.lines.append(line)
        self.size += len(line)
        if self.size > 65536:
            self.flush()

    def flush(self):
        if self.lines:
            text, self.lines, self.size = ''.join(self.lines), [], 0
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass


# Headers the front itself reads, by lower-case name: each has a slot of Connection.
_WATCHED = {b'content-length': 1, b'transfer-encoding': 2, b'expect': 3, b'x-request-id': 4}
_WATCHED.update({name.title(): slot for name, slot in _WATCHED.items()})
_WATCHED[b'X-Request-ID'] = 4
_WATCHED_SIZES = {len(name) for name in _WATCHED}


class Connection:
    """One client connection: its parser state and the requests it completed."""

    __slots__ = ('front', 'sock', 'raw_send', 'client', 'parser', 'deadline', 'idle', 'in_message', 'in_head', 'done',
                 'url', 'raw_headers', 'length', 'coding', 'expect', 'given_id', 'http10', 'head_size', 'body')

    def __init__(self, front, sock, address):
        self.front = front
        self.sock = sock
        # gevent's socket wraps a non-blocking one; its send skips gevent's layers.
        self.raw_send = getattr(sock, '_sock', sock).send
        self.client = address[0] if isinstance(address, tuple) else str(address)
        self.parser = HttpRequestParser(self)
        self.deadline = FOREVER
        self.idle = True  # waiting for a request, with nothing of one received
        self.in_message = self.in_head = self.http10 = False
        self.done = []
        self.url = self.body = b''
        self.raw_headers = self.length = self.coding = self.expect = self.given_id = None
        self.head_size = 0

    # llhttp's callbacks

    def on_url(self, part):
        if self.in_message:  # the rest of a target that came in pieces
            self.url += part
            if len(self.url) > MAX_LINE:
                raise _Reject(414)
            return
        # The first callback of every request (no on_message_begin: one call less).
        self.in_message = self.in_head = True
        self.url = part
        self.body = b''
        self.raw_headers = []
        self.length = self.coding = self.expect = self.given_id = None
        self.deadline = self.front.now + self.front.head_timeout
        if len(part) > MAX_LINE:
            raise _Reject(414)

    def on_header(self, name, value):
        self.raw_headers.append((name, value))  # sizes are checked once the head is whole
        slot = _WATCHED.get(name)
        if slot is None and len(name) in _WATCHED_SIZES:
            slot = _WATCHED.get(name.lower())
        if slot is not None:
            if slot == 1:
                self.length = value  # llhttp refuses a second one
            elif slot == 2:
                self.coding = value if self.coding is None else self.coding + b', ' + value
            elif slot == 3:
                self.expect = value
            else:
                self.given_id = value

    def on_headers_complete(self):
        self.in_head = False
        headers = self.raw_headers
        if len(headers) > MAX_HEADERS or self.head_size > MAX_HEADER and any(
                len(name) + len(value) > MAX_HEADER for name, value in headers):
            raise _Reject(431)
        version = self.parser.get_http_version()
        if version != '1.1':
            if version != '1.0':
                raise _Reject(505)
            self.http10 = True
        else:
            self.http10 = False
        coding = self.coding
        if coding is not None and coding.lower() != b'chunked':
            if coding.rpartition(b',')[2].strip().lower() != b'chunked':
                raise _Reject(400)  # the body's end cannot be known: the framing is ambiguous
            raise _Reject(501)  # chunked after a coding apiphant does not speak
        length = self.length
        if length is not None and int(length) > self.front.max_body_size:
            raise _Reject(413)
        if self.expect is not None and self.expect.lower() == b'100-continue' and (coding or length):
            self.sock.sendall(_CONTINUE)
        self.deadline = self.front.now + self.front.body_timeout

    def on_body(self, chunk):
        body = self.body + chunk if self.body else chunk
        if len(body) > self.front.max_body_size:
            raise _Reject(413)
        self.body = body
        self.deadline = self.front.now + self.front.body_timeout

    def on_message_complete(self):
        parser = self.parser
        self.done.append((parser.get_method(), self.url, self.raw_headers, self.given_id, self.body,
                          parser.should_keep_alive(), self.http10))
        self.in_message = False
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
                if not self.in_message:
                    self.idle = True
                    self.head_size = 0
                    self.deadline = front.grace_end if front.draining else front.now + front.keepalive_timeout
                try:
                    data = recv(65536)
                except OSError:
                    return
                self.idle = False
                if not data:
                    return
                self.head_size += len(data)
                reject = None
                try:
                    feed(data)
                except HttpParserUpgrade:  # never done: answer what came before, then close
                    reject = 0 if self.done else 400
                except HttpParserError as error:
                    cause = error.__context__
                    reject = cause.status if isinstance(cause, _Reject) else 400
                if reject is None and self.in_head and self.head_size > MAX_HEAD:
                    reject = 431
                if self.done or reject is not None:
                    self.deadline = FOREVER
                    if not self._answer_all(reject):
                        return
                    if not self.in_message:  # an idle connection keeps nothing of its last request
                        self.raw_headers = None
                        self.url = self.body = b''
        finally:
            front.connections.discard(self)
            try:
                sock.close()
            except OSError:
                pass

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
        (a status; 0 to close with no answer of its own), in one write; False
        when the connection ends. A request that asks to close is the last
        one answered."""
        done = self.done
        if len(done) == 1 and reject is None:
            out, close = self._answer(*done[0], True, False)
            done.clear()
        else:
            self.done = []
            answers = []
            close = False
            last = len(done) - 1
            for index, request in enumerate(done):
                answer, close = self._answer(*request, index == last and not reject, index == last and reject == 0)
                answers.append(answer)
                if close:
                    break
            if reject and not close:
                answers.append(self._head(_STATUS[STATUS_LINES[reject]], (), None, _error_body(reject),
                                          False, False, False))
            close = close or reject is not None
            out = b''.join(answers)
        try:
            sent = self.raw_send(out)  # the kernel takes a small answer whole: no need to wait
        except BlockingIOError:
            sent = 0
        except OSError:
            return False
        if sent < len(out):
            self.deadline = self.front.now + self.front.body_timeout
            try:
                self.sock.sendall(out[sent:])
            except OSError:
                return False
            self.deadline = FOREVER
        return not close

    def _answer(self, method, url, raw_headers, given_id, body, keep_alive, http10, last, must_close):
        front = self.front
        app = front.app
        log = front.access_log
        started = time.perf_counter() if log is not None else 0
        query = url.find(b'?')
        path = url if query < 0 else url[:query]
        route = front.routes.get(path)
        if route is None and path[:1] != b'/':  # the absolute form, http://host/path
            try:
                path = parse_url(url).path or b''
            except HttpParserError:
                path = b''
            route = front.routes.get(path)
        method_name = _METHODS.get(method) or method.decode('latin-1')
        request_id = app.new_request_id() if given_id is None else app.request_id(given_id.decode('latin-1'))
        if route is not None and route.raw_environ:
            context = (request_id, route, self.client, None, None,
                       lambda: self._environ(method_name, url, raw_headers, body), raw_headers)
        else:
            context = (request_id, route, self.client, None, None, None, raw_headers)
        status, extra, payload = app.respond(route, method_name, body, context)
        if log is not None:
            log(self.client, method_name, path.decode('latin-1'), status, time.perf_counter() - started, request_id)
        close = not keep_alive or must_close or (last and front.draining)  # draining: after the last answer
        status = _STATUS.get(status) or status.encode('latin-1')
        if not extra and not close and not http10 and method != b'HEAD':
            return _ANSWER % (status, len(payload), request_id.encode('latin-1'), front.date, payload), False
        return self._head(status, extra, request_id, payload, method == b'HEAD', not close, http10), close

    def _head(self, status, extra, request_id, payload, head_only, keep_alive, http10):
        parts = [b'HTTP/1.1 ', status, b'\r\n']
        typed = False
        for name, value in extra:  # checked by the application: no line breaks
            typed = typed or name.lower() == 'content-type'
            parts += (name.encode('latin-1'), b': ', value.encode('latin-1'), b'\r\n')
        if request_id is not None:
            parts += (b'X-Request-Id: ', request_id.encode('latin-1'), b'\r\n')
        if not typed:
            parts.append(b'Content-Type: application/json\r\n')
        parts += (b'Content-Length: ', b'%d' % len(payload), b'\r\nDate: ', self.front.date, b'\r\n')
        if not keep_alive:
            parts.append(b'Connection: close\r\n')
        elif http10:
            parts.append(b'Connection: keep-alive\r\n')
        parts.append(b'\r\n')
        if not head_only:
            parts.append(payload)
        return b''.join(parts)

    def _environ(self, method, url, raw_headers, body):
        """A WSGI environ, for the ``@raw_environ`` actions that want one."""
        path, _, query = url.partition(b'?')
        server = self.front.address
        environ = {
            'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': unquote_to_bytes(path).decode('latin-1'),
            'QUERY_STRING': query.decode('latin-1'), 'RAW_URI': url.decode('latin-1'),
            'SERVER_NAME': str(server[0]), 'SERVER_PORT': str(server[1]),
            'SERVER_PROTOCOL': 'HTTP/' + self.parser.get_http_version(),
            'REMOTE_ADDR': self.client, 'CONTENT_LENGTH': str(len(body)),
            'wsgi.version': (1, 0), 'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(body),
            'wsgi.errors': sys.stderr, 'wsgi.multithread': False, 'wsgi.multiprocess': False,
            'wsgi.run_once': False, 'wsgi.input_terminated': True,
        }
        for name, value in Headers.from_raw(raw_headers).items():
            if '_' in name:
                continue  # X_Forwarded_For would pass for X-Forwarded-For in the environ
            key = name.upper().replace('-', '_')
            if key == 'CONTENT_TYPE':
                environ[key] = value
            elif key not in ('CONTENT_LENGTH', 'TRANSFER_ENCODING'):
                environ['HTTP_' + key] = value
        return environ

    def end(self):
        """End the connection now, from another greenlet (the reaper, a drain)."""
        try:
            self.sock.shutdown(2)
        except OSError:
            pass
