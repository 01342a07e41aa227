"""Peer: a bare gevent.pywsgi WSGI app that echoes the JSON body, as shipped.

Usage: python pywsgi_hello.py PORT
It does what apiphant's echo does on the wire (decode, add "server", encode)
with no routing, validation or error handling: what gevent's own WSGI server
costs for the same work.
"""
import sys

from gevent import monkey

monkey.patch_all()

import orjson  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


def app(environ, start_response):
    length = int(environ.get('CONTENT_LENGTH') or 0)
    request = orjson.loads(environ['wsgi.input'].read(length) or b'{}')
    request['server'] = 'pywsgi'
    body = orjson.dumps(request)
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


if __name__ == '__main__':
    WSGIServer(('127.0.0.1', int(sys.argv[1])), app, log=None).serve_forever()
