"""Peer: the bare httptools loop, the headroom of an HTTP front on gevent.

Usage: python httptools_loop.py PORT [--lean | --nodelay | --yield]
A gevent StreamServer parsing with httptools (llhttp), echoing the JSON body
through orjson with one sendall per batch of requests: no routing, no WSGI,
no request object, no error handling. ``--lean`` is the loop issue 10 holds
apiphant to (at least 0.8x): it also sets TCP_NODELAY on each connection and
yields to the hub after each batch, so the next read rarely finds nothing
(``--nodelay`` and ``--yield`` do one of the two, to tell their effects apart).
"""
import socket
import sys

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402
import orjson  # noqa: E402
from gevent.server import StreamServer  # noqa: E402
from httptools import HttpRequestParser  # noqa: E402

HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'
NODELAY = bool({'--lean', '--nodelay'} & set(sys.argv[2:]))
YIELD = bool({'--lean', '--yield'} & set(sys.argv[2:]))
NAME = 'lean' if NODELAY and YIELD else 'loop'


class Protocol:
    def __init__(self):
        self.body = b''
        self.done = []

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.done.append(self.body)
        self.body = b''


def handle(sock, address):
    if NODELAY:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    protocol = Protocol()
    parser = HttpRequestParser(protocol)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            parser.feed_data(data)
            if protocol.done:
                out = []
                for body in protocol.done:
                    request = orjson.loads(body)
                    request['server'] = NAME
                    payload = orjson.dumps(request)
                    out.append(HEAD % len(payload) + payload)
                protocol.done.clear()
                sock.sendall(b''.join(out))
                if YIELD:
                    gevent.sleep(0)
    except ConnectionResetError:
        pass


if __name__ == '__main__':
    StreamServer(('127.0.0.1', int(sys.argv[1])), handle).serve_forever()
