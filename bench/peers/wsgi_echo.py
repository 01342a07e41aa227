"""Peer: a bare WSGI callable echoing the JSON body, for granian (a Rust HTTP server).

Usage: bench/.venv/bin/granian --interface wsgi --working-dir bench/peers wsgi_echo:app --port PORT
The same wire work as apiphant's echo (decode, add "server", encode) with no
routing, validation, error handling or log: what a Rust front running a
Python callable costs for it. run.py gives granian one worker, one runtime
thread and one Python thread, all on the server's core.
"""
import orjson

HEADERS = [('Content-Type', 'application/json')]


def app(environ, start_response):
    length = int(environ.get('CONTENT_LENGTH') or 0)
    request = orjson.loads(environ['wsgi.input'].read(length) or b'{}')
    request['server'] = 'granian'
    body = orjson.dumps(request)
    start_response('200 OK', HEADERS + [('Content-Length', str(len(body)))])
    return [body]
