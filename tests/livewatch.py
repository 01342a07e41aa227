"""A test's watch stream: a raw socket, the chunked body decoded by hand, so
that a test sees exactly what the server sent (events, comments, ids
without data) and how the stream ended (its last chunk, or a cut)."""
import json
import socket
import time

__all__ = ['Watch', 'open_watch', 'Ended']


class Ended(Exception):
    """The stream ended: ``clean`` when with the chunked body's last chunk."""

    def __init__(self, clean):
        super().__init__('the stream ended ' + ('cleanly' if clean else 'without its last chunk'))
        self.clean = clean


class Watch:
    def __init__(self, sock, status, headers, rest):
        self.sock, self.status, self.headers = sock, status, headers
        self.raw = rest  # received, not yet decoded (chunked)
        self.text = b''  # decoded body, not yet parsed into events
        self.last_id = None  # as a client keeps it: any id line, with or without data
        self.comments = 0
        self.body = b''  # the whole body, for error answers
        self.done = False

    def _fill(self, deadline):
        """Decode what is there; read more when nothing is whole yet."""
        while True:
            if self._decode():
                return
            if self.done:
                self.close()
                raise Ended(True)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no event in time')
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError('no event in time') from None
            except OSError:
                data = b''
            if not data:
                self.close()
                raise Ended(False)
            self.raw += data

    def _decode(self):
        """Move whole chunks from raw to text; True when some text came."""
        came = False
        while True:
            line_end = self.raw.find(b'\r\n')
            if line_end < 0:
                return came
            size = int(self.raw[:line_end], 16)
            if size == 0:
                self.done = True
                self.raw = b''
                return came
            if len(self.raw) < line_end + 2 + size + 2:
                return came
            self.text += self.raw[line_end + 2:line_end + 2 + size]
            self.raw = self.raw[line_end + 4 + size:]
            came = True

    def next(self, timeout=5.0, *, kinds=('create', 'update', 'delete', 'ready', 'reset')):
        """The next event (a dict: id, event, data), skipping others than ``kinds``."""
        deadline = time.monotonic() + timeout
        while True:
            while b'\n\n' not in self.text:
                self._fill(deadline)
            block, self.text = self.text.split(b'\n\n', 1)
            event = {}
            for line in block.decode().split('\n'):
                name, _, value = line.partition(':')
                value = value[1:] if value.startswith(' ') else value
                if name == '':
                    self.comments += 1
                elif name == 'id':
                    self.last_id = int(value)
                    event['id'] = int(value)
                elif name == 'event':
                    event['event'] = value
                elif name == 'data':
                    event['data'] = json.loads(value)
            if 'data' in event and event.get('event') in kinds:
                return event

    def events(self, count, timeout=5.0):
        return [self.next(timeout) for _ in range(count)]

    def quiet(self, seconds):
        """Assert that no event comes within ``seconds``."""
        try:
            event = self.next(seconds)
        except TimeoutError:
            return
        raise AssertionError(f'an event came: {event}')

    def end(self, timeout=5.0):
        """Read to the end; whether it was clean."""
        try:
            while True:
                self.next(timeout)
        except Ended as ended:
            return ended.clean

    def close(self):
        self.sock.close()


def open_watch(server, target='v0/tasks', where=None, *, method='POST', last_id=None, token=None, query=None,
               headers=(), timeout=5.0, rcvbuf=None):
    """A ``Watch`` on ``server`` (a ServedProduct); an error answer leaves
    ``status`` and ``body`` set and the socket closed. ``rcvbuf``: the
    socket's receive buffer, set before it connects."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((server.host, server.port))
    lines = [f'Host: {server.host}:{server.port}']
    body = b''
    path = f'/api/{target}/watch'
    if method == 'GET':
        if query is not None:
            path += '?' + query
    else:
        body = json.dumps({} if where is None else {'where': where}).encode()
        lines += ['Content-Type: application/json', f'Content-Length: {len(body)}']
    if last_id is not None:
        lines.append(f'Last-Event-ID: {last_id}')
    if token is not None:
        lines.append(f'Authorization: Bearer {token}')
    lines += list(headers)
    sock.sendall(f'{method} {path} HTTP/1.1\r\n'.encode() + ''.join(f'{line}\r\n' for line in lines).encode('latin-1')
                 + b'\r\n' + body)
    data = b''
    while b'\r\n\r\n' not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError(f'closed before the head: {data!r}')
        data += more
    head, rest = data.split(b'\r\n\r\n', 1)
    status_line, *header_lines = head.decode('latin-1').split('\r\n')
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    watch = Watch(sock, int(status_line.split()[1]), headers, rest)
    if watch.status != 200:
        length = int(headers.get('content-length', 0))
        while len(rest) < length:
            rest += sock.recv(65536)
        watch.body = json.loads(rest) if rest else None
        sock.close()
    return watch
