"""Serving an application: listen, log one line when ready, drain on SIGTERM.

The seam between the command line and the HTTP front. (0.2's
``apiphant.server.raw_environ`` and ``raw_response`` live on here.)
"""
import faulthandler
import gc
import logging
import os
import resource
import signal
import socket
import sys

import gevent
import gevent.event

from apiphant.front import Front
from apiphant.logs import AccessLog
from apiphant.routing import raw_environ, raw_response

__all__ = ['serve', 'listen', 'raise_file_limit', 'raw_environ', 'raw_response']

log = logging.getLogger('apiphant')


def raise_file_limit():
    """One file descriptor per connection: take all the system allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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


def _beater(pipe):
    def beat():
        try:
            os.write(pipe, b'.')
        except BrokenPipeError:  # the parent is gone: drain and go too
            log.warning('the parent process is gone: stopping')
            os.kill(os.getpid(), signal.SIGTERM)
    return beat


def serve(application, listener, *, name='apiphant', shutdown_timeout=8.0, access_log=None, log_format='text',
          pipe=None, **options):
    """Serve on ``listener`` (a listening socket) until SIGTERM (drain, then
    return) or SIGINT (KeyboardInterrupt). A worker tells its parent on
    ``pipe`` (a file descriptor) when it serves, and beats each second.
    ``options`` go to the Front: timeouts, trusted proxies."""
    front = Front(application, listener, access_log=AccessLog(access_log, log_format) if access_log else None,
                  heartbeat=_beater(pipe) if pipe is not None else None, **options)
    stopping = gevent.event.Event()

    def on_sigterm():
        log.info('SIGTERM: draining (up to %ss)', shutdown_timeout)
        stopping.set()

    gevent.signal_handler(signal.SIGTERM, on_sigterm)
    gevent.signal_handler(signal.SIGHUP, lambda: log.warning(
        'SIGHUP: ignored; a single process does not reload: run it with --workers 2 or more '
        '(SIGHUP replaces the workers one by one) or restart it'))
    faulthandler.enable()  # a crash, or the SIGABRT of a parent that found this process stuck, writes the stack
    # What start-up made (modules, routes) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it all and
    # stalls every request for milliseconds.
    gc.freeze()
    front.start()
    log.info('serving %s on %s', name, shown(listener.getsockname()))
    sys.stderr.flush()
    if pipe is not None:
        os.write(pipe, b'r')
    stopping.wait()
    front.drain(shutdown_timeout)
    if front.metrics is not None:
        front.metrics.tick()  # what it counted since the last tick, for the processes that stay
    log.info('stopped')
