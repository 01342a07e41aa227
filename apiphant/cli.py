"""``apiphant PRODUCT HOST:PORT``: the API daemon's command line.

It decides its mode once: list the routes, be one of a parent's workers,
be the parent of workers, or serve alone; one small function each.
"""
import argparse
import os
import shutil
import socket
import sys
import tempfile

import orjson

from apiphant.auth import tokens
from apiphant.crud import settings as database_settings
from apiphant.dispatch import app
from apiphant.logs import configure as configure_logging
from apiphant.product import ProductError, directory, locate
from apiphant.settings import add_arguments
from apiphant.workers import worker_fds

__all__ = ['main', 'parse_address']

USAGE = ('apiphant PRODUCT HOST:PORT [options]\n       apiphant PRODUCT --routes\n       apiphant PRODUCT --openapi\n'
         '       apiphant new NAME [DIR]\n       apiphant upgrade [DIR]\n'
         '       apiphant users PRODUCT add|list|disable|enable|set-password|roles ...\n'
         '       apiphant keys PRODUCT add|list|revoke ...')


def parse_address(text):
    """``(host, port)`` from ``127.0.0.1:8001``, ``[::1]:8001`` or ``::1:8001``
    (split at the last colon, as in 0.2)."""
    host, colon, port = text.rpartition(':')
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'{text!r} is not HOST:PORT (e.g. 127.0.0.1:8001 or [::1]:8001)')
    return host, int(port)


def _address(text):
    try:
        return parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser():
    result = argparse.ArgumentParser(
        prog='apiphant', usage=USAGE,
        description='Serve a product package as a JSON API: POST /api/<version>/<target>/<action>.')
    result.add_argument('product', help='the product: a directory (examples/myproduct) or a package name')
    result.add_argument('address', nargs='?', type=_address,
                        help='HOST:PORT to listen on; port 0 picks a free one')
    result.add_argument('--routes', action='store_true', help='print the route table and exit')
    result.add_argument('--openapi', action='store_true',
                        help='print the OpenAPI document GET /api/openapi.json answers, and exit')
    add_arguments(result, 'apiphant')
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['new']:
        from apiphant.scaffold import main as new
        return new(argv[1:])
    if argv[:1] == ['upgrade']:
        from apiphant.scaffold import upgrade
        return upgrade(argv[1:])
    if argv[:1] in (['users'], ['keys']):
        from apiphant.auth.cli import main as manage
        return manage(argv[0], argv[1:])
    args_parser = parser()
    args = args_parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    database_settings.configure(args)  # the tables' database, before the product is imported
    try:
        tokens.configure(args.auth_keys, args.auth_keys_file)
    except (ValueError, OSError) as error:
        sys.exit(f'apiphant: {error}')
    if args.routes:
        return list_routes(args)
    if args.openapi:
        return print_openapi(args)
    if (fds := worker_fds()) is not None:
        return serve_as_worker(args, *fds)
    if args.address is None:
        args_parser.error('HOST:PORT is missing')
    if args.workers > 1 or args.reload or args.watchdog:
        return supervise_workers(args, argv)
    return serve_alone(args)


def list_routes(args):
    """``--routes``: the route table, with no database touched."""
    print_routes(_application(args, start=False).routes.values())


def print_openapi(args):
    """``--openapi``: the document the server would answer, with no database touched."""
    from apiphant import openapi
    from apiphant.docs import DOCUMENT_PATH
    from apiphant.metrics import Metrics
    application = _application(args, start=False, metrics=Metrics() if args.metrics else None)  # in memory
    served = application.routes.get(DOCUMENT_PATH)
    if served is not None:
        document = orjson.loads(b''.join(served.function({}, lambda status, headers: None)))
    else:
        document = openapi.document(application, locate(args.product))
    print(openapi.encode(document, indent=True).decode())


def serve_as_worker(args, listen_fd, pipe_fd):
    """A worker of a parent: serve on the socket it passed, beat on its pipe."""
    _serve(args, _application(args), socket.socket(fileno=listen_fd), pipe=pipe_fd)


def supervise_workers(args, argv):
    """The parent of ``--workers`` processes: it imports nothing of the product."""
    from apiphant.workers import supervise
    try:
        package = locate(args.product)
    except ProductError as error:
        sys.exit(f'apiphant: {error}')
    listener = _listen(args.address)
    shared = None
    if args.metrics and not args.metrics_dir:  # the workers' numbers meet here, for /metrics
        shared = tempfile.mkdtemp(prefix='apiphant-metrics-')
        os.environ['APIPHANT_METRICS_DIR'] = shared
    try:
        sys.exit(supervise(argv, listener, args.workers, shutdown_timeout=args.shutdown_timeout,
                           stuck_timeout=args.stuck_timeout, watched=directory(package) if args.reload else None))
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)


def serve_alone(args):
    application = _application(args)  # before listening: a product that cannot start takes no port
    _serve(args, application, _listen(args.address))


def _application(args, *, start=True, metrics=None):
    try:
        if start and args.metrics:
            from apiphant import metrics as process_metrics
            metrics = process_metrics.PROCESS = process_metrics.Metrics('api', args.metrics_dir or None)
        return app(args.product, max_body_size=args.max_body_size, start=start, rate_limit=args.rate_limit,
                   max_in_flight=args.max_in_flight, metrics=metrics, metrics_allow=args.metrics_allow,
                   require_json=args.require_json, docs=args.docs, cors_origins=args.cors_origins,
                   client_js=args.client_js)
    except (ProductError, ValueError) as error:  # ValueError: a route table that cannot be built
        sys.exit(f'apiphant: {error}')


def _listen(address):
    from apiphant.server import listen
    try:
        return listen(*address)
    except OSError as error:
        host, port = address
        sys.exit(f'apiphant: cannot listen on {host}:{port}: {error}')


def _serve(args, application, listener, pipe=None):
    from apiphant.server import raise_file_limit, serve
    raise_file_limit()
    if args.access_log == 'off':
        access_log = None
    elif args.access_log == 'on':
        access_log = sys.stderr
    else:
        access_log = open(args.access_log, 'a', encoding='utf-8')  # open as long as the process
    try:
        serve(application, listener, name=args.product, shutdown_timeout=args.shutdown_timeout,
              access_log=access_log, log_format=args.log_format, pipe=pipe, head_timeout=args.head_timeout,
              body_timeout=args.body_timeout, keepalive_timeout=args.keepalive_timeout,
              trusted_proxies=args.trusted_proxies)
    except KeyboardInterrupt:
        sys.exit(130)


def print_routes(routes):
    rows = [('PATH', 'FUNCTION', 'ACCESS', 'DOC')] + [
        (route.path, f'{route.module}.{route.function.__name__}'
         + (' (raw)' if route.raw_environ or route.raw_response else ''),
         str(route.access or '-'), route.doc.split('\n', 1)[0]) for route in sorted(routes, key=lambda r: r.path)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for path, function, access, doc in rows:
        print(f'{path:<{widths[0]}}  {function:<{widths[1]}}  {access:<{widths[2]}}  {doc}'.rstrip())
