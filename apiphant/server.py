"""Serving an application on a socket with gevent.

The seam between apiphant and its HTTP front: ``serve()`` takes any WSGI
application, listens, logs one line when ready, and drains on SIGTERM.
(0.2's ``apiphant.server.raw_environ`` and ``raw_response`` live on here.)
"""
import logging
import signal
import socket
import sys
import time

import gevent
import gevent.event
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from apiphant.routing import raw_environ, raw_response

__all__ = ['serve', 'Server', 'raw_environ', 'raw_response']

log = logging.getLogger('apiphant')

_CLOSE = ('Connection', 'close')


class _Handler(WSGIHandler):
    """gevent's handler, with one write per response, an access-log line with
    the request id, and connections closed while the server drains."""

    def read_requestline(self):
        server = self.server
        if server.draining:
            return ''
        server.idle.add(self)
        try:
            return super().read_requestline()
        finally:
            server.idle.discard(self)

    def get_environ(self):
        environ = super().get_environ()
        environ['RAW_URI'] = self.path  # as gunicorn does: the path before percent-decoding
        return environ

    def start_response(self, status, headers, exc_info=None):
        if self.server.draining:
            headers = [*headers, _CLOSE]
        return super().start_response(status, headers, exc_info)

    def run_application(self):
        try:
            super().run_application()
        finally:
            if self.close_connection:
                # A response that closes the connection (a 413, say) leaves the
                # body unread: reading 64 MiB to discard it would be a gift to a
                # client that never sends them.
                self.wsgi_input._discard = _nothing

    def _write_with_headers(self, data):
        self.headers_sent = True
        self.finalize_headers()
        head = [b'HTTP/1.1 ', self.status, b'\r\n']
        for name, value in self.response_headers:
            head += (name, b': ', value, b'\r\n')
        head.append(b'\r\n')
        if self.response_use_chunked:
            self._sendall(b''.join(head))
            self._write(data)
        else:
            head.append(data)
            self._sendall(b''.join(head))

    def format_request(self):
        environ = getattr(self, 'environ', None) or {}
        took = (self.time_finish - self.time_start) * 1000 if self.time_finish else 0.0
        return '%s %s "%s" %s %s %.1fms %s' % (
            time.strftime('%Y-%m-%dT%H:%M:%S'), self.client_address[0] if isinstance(
                self.client_address, tuple) else self.client_address or '-',
            self.requestline or '', (self._orig_status or '000').split(' ', 1)[0],
            self.response_length or 0, took, environ.get('apiphant.request_id', '-'))


def _nothing():
    pass


class Server(WSGIServer):
    handler_class = _Handler
    draining = False

    def __init__(self, address, application, *, access_log=None):
        super().__init__(address, application, spawn=Pool(), log=access_log,
                         error_log=_ErrorLog())
        self.idle = set()

    def handle(self, sock, address):
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)

    def drain(self, timeout):
        """Stop accepting, close idle connections, let requests in flight
        finish (answered with ``Connection: close``) for up to ``timeout``
        seconds, then end what is left."""
        self.draining = True
        self.close()
        for handler in list(self.idle):
            try:
                handler.socket.shutdown(socket.SHUT_RD)
            except (OSError, AttributeError):
                pass
        if not self.pool.join(timeout=timeout):
            log.warning('%d connections still busy after %ss; closing them', len(self.pool), timeout)
        self.pool.kill(block=True, timeout=1)


class _ErrorLog:
    """gevent reports handler errors here; they go to the apiphant log."""

    def write(self, text):
        text = text.rstrip()
        if text:
            log.error('%s', text)

    def flush(self):
        pass


def serve(application, host, port, *, shutdown_timeout=8.0, access_log=None, name='apiphant'):
    """Serve until SIGTERM (drain, then return) or SIGINT (KeyboardInterrupt)."""
    server = Server((host, port), application, access_log=access_log)
    server.init_socket()
    bound_host, bound_port = server.address[:2]
    shown = f'[{bound_host}]' if ':' in bound_host else bound_host
    stopping = gevent.event.Event()

    def on_sigterm():
        log.info('SIGTERM: draining (up to %ss)', shutdown_timeout)
        stopping.set()

    gevent.signal_handler(signal.SIGTERM, on_sigterm)
    server.start()
    log.info('serving %s on http://%s:%d', name, shown, bound_port)
    sys.stderr.flush()
    stopping.wait()
    server.drain(shutdown_timeout)
    log.info('stopped')
