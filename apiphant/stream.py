"""A response that goes on after its head: a stream of server-sent events
on a connection that no greenlet holds.

An action returns a ``Stream``; the front sends its head and hands it the
socket, and the connection's greenlet ends. From then on:

- what the stream sends goes straight to the socket, non-blocking; what
  the kernel does not take waits in the stream's buffer, sent by a
  callback of the hub when the socket can take more; a reader that falls
  ``MAX_PENDING`` bytes behind is cut (it resumes where it was, with
  Last-Event-ID);
- a callback of the hub watches the socket for reading: the client sends
  nothing on a stream, so its end (or anything it sends) ends the stream;
- ``close()`` (the source's end, a drain) ends the chunked body cleanly,
  so that the client tells it from a cut, and closes the socket.

An idle stream so costs its socket, one watcher of the hub and this
object: no greenlet, no stack.
"""
import _socket  # the C socket: gevent's would wait in send, this one says it would block
import logging

import gevent

__all__ = ['Stream', 'frame', 'MAX_PENDING', 'HEADERS']

log = logging.getLogger('apiphant')

MAX_PENDING = 1 << 20  # bytes a reader may fall behind before it is cut
HEADERS = (('Content-Type', 'text/event-stream'), ('Cache-Control', 'no-store'),
           ('X-Accel-Buffering', 'no'))  # nginx passes it on as it comes
_LAST_CHUNK = b'0\r\n\r\n'
_READ, _WRITE = 1, 2


def frame(data):
    """``data`` as one chunk of a chunked body."""
    return b'%x\r\n%s\r\n' % (len(data), data)


class Stream:
    """``opened(stream)`` runs once the head is sent (it may send the first
    events, and wait); ``closed(stream)`` once it ended, however it ended."""

    __slots__ = ('opened', 'closed', 'raw', 'chunked', 'pending', 'reader', 'writer', 'ended', 'streams', 'client')

    def __init__(self, opened, closed):
        self.opened, self.closed = opened, closed
        self.raw = self.reader = self.writer = self.pending = self.streams = self.client = None
        self.chunked = True
        self.ended = False

    def attach(self, sock, *, streams, client):
        """Take the connection ``sock`` (gevent's), whose head was sent (its
        body chunked, or in HTTP/1.0, ``chunked`` False, up to the close),
        from gevent's socket, which its server closes when the connection's
        greenlet ends; ``streams``: the front's set of open streams."""
        self.raw = _socket.socket(fileno=sock.detach())
        self.raw.setblocking(False)
        self.streams, self.client = streams, client
        streams.add(self)
        self.reader = gevent.get_hub().loop.io(self.raw.fileno(), _READ)
        self.reader.start(self._readable)
        try:
            self.opened(self)
        except Exception:
            log.exception('an event stream to %s failed as it opened', client)
            self.end(cut=True)

    def send(self, data, chunk=None):
        """Send ``data`` (an event, whole; ``chunk``: the same framed as
        a chunk, made once for many streams); False when the stream has ended."""
        if self.ended:
            return False
        if self.chunked:
            data = chunk or frame(data)
        if self.pending is not None:  # behind already: after what waits
            self.pending += data
            if len(self.pending) > MAX_PENDING:
                log.warning('%s fell %d bytes behind its event stream: cut', self.client, len(self.pending))
                self.end(cut=True)
                return False
            return True
        try:
            sent = self.raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.end(cut=True)
            return False
        if sent < len(data):
            self.pending = bytearray(data[sent:])
            self.writer = gevent.get_hub().loop.io(self.raw.fileno(), _WRITE)
            self.writer.start(self._writable)
        return True

    def _writable(self):
        try:
            sent = self.raw.send(self.pending)
        except BlockingIOError:
            return
        except OSError:
            self.end(cut=True)
            return
        del self.pending[:sent]
        if not self.pending:
            self.pending = None
            self.writer.stop()
            self.writer = None

    def _readable(self):
        try:
            self.raw.recv(1024)
        except BlockingIOError:
            return
        except OSError:
            pass
        self.end(cut=True)  # the client's end, or bytes a stream does not take

    def end(self, cut=False):
        """End the stream: cleanly (the chunked body's end), or ``cut``."""
        if self.ended:
            return
        self.ended = True
        for watcher in (self.reader, self.writer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self.reader = self.writer = None
        if not cut and self.chunked and self.pending is None and self.raw is not None:
            try:
                self.raw.send(_LAST_CHUNK)
            except OSError:
                pass
        self.pending = None
        if self.raw is not None:
            self.raw.close()
        if self.streams is not None:
            self.streams.discard(self)
        self.closed(self)
