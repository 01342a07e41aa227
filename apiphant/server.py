"""Serving an application: listen, log one line when ready, drain on SIGTERM.

The seam between the command line and the HTTP front. (0.2's
``apiphant.server.raw_environ`` and ``raw_response`` live on here.)
"""
import logging
import signal
import socket
import sys

import gevent
import gevent.event

from apiphant.front import AccessLog, Front
from apiphant.routing import raw_environ, raw_response

__all__ = ['serve', 'listen', 'raw_environ', 'raw_response']

log = logging.getLogger('apiphant')


def listen(host, port, backlog=2048):
    """A listening TCP socket; raises OSError with the reason when it cannot."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def shown(address):
    host, port = address[:2]
    return f'http://[{host}]:{port}' if ':' in host else f'http://{host}:{port}'


def serve(application, listener, *, name='apiphant', shutdown_timeout=8.0, access_log=None, **timeouts):
    """Serve on ``listener`` (a listening socket) until SIGTERM (drain, then
    return) or SIGINT (KeyboardInterrupt)."""
    front = Front(application, listener, access_log=AccessLog(access_log) if access_log else None, **timeouts)
    stopping = gevent.event.Event()

    def on_sigterm():
        log.info('SIGTERM: draining (up to %ss)', shutdown_timeout)
        stopping.set()

    gevent.signal_handler(signal.SIGTERM, on_sigterm)
    front.start()
    log.info('serving %s on %s', name, shown(listener.getsockname()))
    sys.stderr.flush()
    stopping.wait()
    front.drain(shutdown_timeout)
    log.info('stopped')
