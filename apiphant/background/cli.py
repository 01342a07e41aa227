"""``apiphant-background PRODUCT``: schedule a product's tasks until SIGTERM;
``--list`` them; ``--run NAME`` one of them once.

Alone, a scheduler keeps everything in memory, as 0.2 did, and a lock file
keeps a second one off this host; with a PostgreSQL URL, schedulers on
several hosts claim each slot there, so that it runs once
(``apiphant.background.claims``).
"""
import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
from datetime import timezone

import gevent
import gevent.event

from apiphant import metrics
from apiphant.background.claims import Alone, CannotStart, Claims, database_url, hold_lock
from apiphant.background.scheduler import OK, Scheduler, call
from apiphant.background.tasks import load
from apiphant.crud import settings as database_settings
from apiphant.crud.storage import require_psycopg
from apiphant.logs import configure as configure_logging
from apiphant.product import ProductError
from apiphant.settings import add_arguments

__all__ = ['main', 'parser']

log = logging.getLogger('apiphant.background')

USAGE = ('apiphant-background PRODUCT [options]\n'
         '       apiphant-background PRODUCT --list\n'
         '       apiphant-background PRODUCT --run NAME')


def parser():
    result = argparse.ArgumentParser(
        prog='apiphant-background', usage=USAGE,
        description='Run the @seconds(N) tasks of PRODUCT.api.background, each on its own schedule.')
    result.add_argument('product', help='the product: a directory (examples/myproduct) or a package name')
    what = result.add_mutually_exclusive_group()
    what.add_argument('--list', action='store_true',
                      help='print the tasks, their periods and (with a database) their last run, and exit')
    what.add_argument('--run', metavar='NAME', help='run task NAME once, now; exit 0 if it succeeds, 1 if not')
    result.add_argument('--database', dest='database_url', default=argparse.SUPPRESS, metavar='URL',
                        help='the same as --database-url')
    add_arguments(result, 'apiphant-background')
    return result


def main(argv=None):
    args_parser = parser()
    args = args_parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        url = database_url(args.database_url)
    except ValueError as error:
        args_parser.error(str(error))
    # The tables of the product's tasks use the database the slots are claimed in.
    database_settings.configure(args)
    try:
        if url:
            require_psycopg()
        package, module, tasks, on_error = load(args.product)
    except ProductError as error:
        sys.exit(f'apiphant-background: {error}')
    if args.run is not None and not any(task.name == args.run for task in tasks):
        args_parser.error(f'no task {args.run!r} in {module}; its tasks: '
                          + ', '.join(task.name for task in tasks))
    claims = Claims(url, package, f'{socket.gethostname()}:{os.getpid()}') if url else Alone()
    try:
        if url:
            claims.prepare()
        if args.list:
            print_tasks(tasks, claims.runs())
        elif args.run is not None:
            sys.exit(run_once(next(task for task in tasks if task.name == args.run), claims, on_error))
        else:
            with contextlib.nullcontext() if url else hold_lock(args.lock_dir, package), \
                    metrics.reporting('background', args.metrics_dir):
                serve(Scheduler(tasks, claims, on_error), module, args.stop_timeout)
    except CannotStart as error:
        sys.exit(f'apiphant-background: {error}')
    except KeyboardInterrupt:
        log.info('SIGINT: stopped at once')
        sys.exit(130)
    finally:
        claims.close()


def run_once(task, claims, on_error):
    """``--run``: 0 if the task succeeded, 1 if not."""
    if not claims.claim(task, None):
        log.error('Task %s was not run (see above)', task.name)
        return 1
    outcome = call(task, on_error)
    claims.finish(task, None, outcome)
    return 0 if outcome == OK else 1


def serve(scheduler, module, stop_timeout):
    """Run until SIGTERM, then stop gracefully; SIGINT (KeyboardInterrupt) stops at once."""
    sigterm = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, sigterm.set)
    log.info('scheduling %s, %s: %s', module, scheduler.claims.describe(), ', '.join(
        f'{task.name} every {task.period:g} s' for task in scheduler.tasks))
    scheduler.start()
    gevent.wait([sigterm, *scheduler.loops], count=1)
    if not sigterm.is_set():  # a loop ended by itself: a bug, reported by gevent above
        scheduler.stop(0)
        sys.exit('apiphant-background: a task loop crashed (see above)')
    log.info('SIGTERM: starting no new run')
    scheduler.stop(stop_timeout)
    log.info('stopped')


def print_tasks(tasks, runs):
    rows = [('TASK', 'EVERY', 'TIMEOUT', 'LAST RUN', 'OUTCOME', 'HOST')]
    for task in tasks:
        started, outcome, host = runs.get(task.name, (None, None, None))
        rows.append((task.name, f'{task.period:g}s', '-' if task.timeout is None else f'{task.timeout:g}s',
                     started.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC') if started else '-',
                     outcome or ('unfinished' if started else '-'), host or '-'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print('  '.join(f'{cell:<{width}}' for cell, width in zip(row, widths)) + '  ' + row[-1])
