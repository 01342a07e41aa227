"""Peer: the gevent ceiling, a StreamServer that answers every request with fixed bytes.

Usage: python canned_stream.py PORT
No HTTP parsing beyond finding where each request ends (the blank line, then
Content-Length bytes of body), so what is left is gevent's socket and
greenlet cost: no server on gevent can answer faster per core.
"""
import re
import sys

from gevent import monkey

monkey.patch_all()

from gevent.server import StreamServer  # noqa: E402

BODY = b'{"hello":"world","server":"canned"}'
RESPONSE = (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
            b'Content-Length: %d\r\n\r\n%s' % (len(BODY), BODY))
CONTENT_LENGTH = re.compile(rb'\r\ncontent-length:\s*(\d+)', re.IGNORECASE)


def handle(sock, address):
    try:
        _serve(sock)
    except ConnectionResetError:
        pass  # wrk resets its connections when it stops


def _serve(sock):
    buffer = b''
    while True:
        end = buffer.find(b'\r\n\r\n')
        if end < 0:
            data = sock.recv(65536)
            if not data:
                return
            buffer += data
            continue
        match = CONTENT_LENGTH.search(buffer, 0, end)
        size = end + 4 + (int(match.group(1)) if match else 0)
        while len(buffer) < size:
            data = sock.recv(65536)
            if not data:
                return
            buffer += data
        buffer = buffer[size:]
        sock.sendall(RESPONSE)


if __name__ == '__main__':
    StreamServer(('127.0.0.1', int(sys.argv[1])), handle).serve_forever()
