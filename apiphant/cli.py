"""``apiphant PRODUCT HOST:PORT``: the API daemon's command line."""
import argparse
import os
import socket
import sys

from apiphant.dispatch import app
from apiphant.logs import configure as configure_logging
from apiphant.product import ProductError, directory, locate
from apiphant.settings import SETTINGS, add_arguments
from apiphant.workers import worker_fds

__all__ = ['main', 'parse_address']

USAGE = 'apiphant PRODUCT HOST:PORT [options]\n       apiphant PRODUCT --routes\n       apiphant new NAME [DIR]'


def parse_address(text):
    """``(host, port)`` from ``127.0.0.1:8001``, ``[::1]:8001`` or ``::1:8001``
    (split at the last colon, as in 0.2)."""
    host, colon, port = text.rpartition(':')
    if host.startswith('[') and host.endswith(']'):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'{text!r} is not HOST:PORT (e.g. 127.0.0.1:8001 or [::1]:8001)')
    return host, int(port)


def parser():
    result = argparse.ArgumentParser(
        prog='apiphant', usage=USAGE,
        description='Serve a product package as a JSON API: POST /api/<version>/<target>/<action>.')
    result.add_argument('product', help='the product: a directory (examples/myproduct) or a package name')
    result.add_argument('address', nargs='?', help='HOST:PORT to listen on; port 0 picks a free one')
    result.add_argument('--routes', action='store_true', help='print the route table and exit')
    add_arguments(result, 'apiphant')
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['new']:
        from apiphant.scaffold import main as new
        return new(argv[1:])
    args_parser = parser()
    args = args_parser.parse_args(argv)
    configure_logging(args.log_level)
    for setting in SETTINGS:  # apiphant.crud reads its settings where the product imports it
        if setting.name.startswith('database_') and 'apiphant' in setting.commands:
            os.environ[setting.env] = str(getattr(args, setting.name))
    fds = worker_fds()
    if not args.routes and fds is None:
        if args.address is None:
            args_parser.error('HOST:PORT is missing')
        try:
            host, port = parse_address(args.address)
        except ValueError as error:
            args_parser.error(str(error))

    supervising = fds is None and not args.routes and (args.workers > 1 or args.reload)
    try:
        if supervising:  # the workers import the product, each in its own process
            package = locate(args.product)
        else:
            application = app(args.product, max_body_size=args.max_body_size, start=not args.routes)
    except (ProductError, ValueError) as error:  # ValueError: a route table that cannot be built
        sys.exit(f'apiphant: {error}')

    if args.routes:
        print_routes(application.routes.values())
        return

    from apiphant.server import listen, raise_file_limit, serve
    raise_file_limit()
    if fds is not None:
        listener = socket.socket(fileno=fds[0])
    else:
        try:
            listener = listen(host, port)
        except OSError as error:
            sys.exit(f'apiphant: cannot listen on {args.address}: {error}')
    try:
        if supervising:
            from apiphant.workers import supervise
            sys.exit(supervise(argv, listener, args.workers, shutdown_timeout=args.shutdown_timeout,
                               stuck_timeout=args.stuck_timeout,
                               watched=directory(package) if args.reload else None))
        access_log = {'on': sys.stderr, 'off': None}.get(args.access_log)
        if access_log is None and args.access_log != 'off':
            access_log = open(args.access_log, 'a', encoding='utf-8')
        serve(application, listener, name=args.product, shutdown_timeout=args.shutdown_timeout,
              access_log=access_log, pipe=fds[1] if fds else None, head_timeout=args.head_timeout,
              body_timeout=args.body_timeout, keepalive_timeout=args.keepalive_timeout)
    except KeyboardInterrupt:
        sys.exit(130)


def print_routes(routes):
    rows = [('PATH', 'FUNCTION', 'DOC')] + [
        (route.path, f'{route.module}.{route.function.__name__}'
         + (' (raw)' if route.raw_environ or route.raw_response else ''),
         route.doc.split('\n', 1)[0]) for route in sorted(routes, key=lambda r: r.path)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for path, function, doc in rows:
        print(f'{path:<{widths[0]}}  {function:<{widths[1]}}  {doc}'.rstrip())
