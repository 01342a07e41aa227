"""``@seconds(N)`` tasks, and ``apiphant-background PRODUCT``, their scheduler.

``apiphant-background myproduct`` imports ``myproduct.api.background`` (a
module, or a package whose ``__init__`` imports the task modules) and runs
each task in its own greenlet on its own schedule (``apiphant.schedule``):
run k starts at its slot's beginning, a run never overlaps the task's
previous one, and a slow or hung task delays no other, as long as it waits
cooperatively (I/O and sleeps, under gevent's monkey-patching).

Alone, a scheduler keeps everything in memory, as 0.2 did; with a PostgreSQL
URL, schedulers on several hosts claim each slot there, so that it runs once
(``apiphant.claims``).
"""
import argparse
import contextlib
import importlib.util
import logging
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import timezone

import gevent
import gevent.event

from apiphant.claims import Alone, CannotStart, Claims, database_url, hold_lock
from apiphant.logs import configure as configure_logging
from apiphant.product import ProductError, import_module, locate
from apiphant.schedule import after_run, due, slot_at, slot_start, wait
from apiphant.settings import add_arguments

__all__ = ['seconds', 'Task', 'TaskTimeout', 'Run', 'current_run', 'tasks_of', 'load', 'call',
           'Scheduler', 'main']

log = logging.getLogger('apiphant.background')

OK, FAILED, INTERRUPTED = 'ok', 'failed', 'interrupted'
_PASS_THROUGH = (gevent.GreenletExit, KeyboardInterrupt)


@dataclass(frozen=True)
class Task:
    """One ``@seconds`` task: what the scheduler runs and ``--list`` shows."""
    name: str
    function: object
    period: float
    timeout: float = None


_registered = []


def seconds(period, *, timeout=None):
    """``@seconds(60)`` runs the function every 60 seconds in
    ``apiphant-background``; ``@seconds(60, timeout=30)`` also interrupts a
    run that lasts longer than 30 seconds and logs it as failed."""
    for name, value in (('period', period), ('timeout', timeout)):
        if value is None and name == 'timeout':
            continue
        if callable(value):
            raise TypeError('@seconds needs a period: @seconds(60), not @seconds')
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f'@seconds: {name} should be a positive number of seconds, not {value!r}')

    def register(function):
        if not callable(function) or not hasattr(function, '__name__'):
            raise TypeError(f'@seconds goes on a function, not on {function!r}')
        _registered.append(Task(function.__name__, function, period, timeout))
        return function
    return register


def tasks_of(registered):
    """The tasks, each named by its function's ``__name__``, or module-qualified
    (``myproduct.api.background.mail.send``) where two share a name."""
    shared = Counter(task.name for task in registered)
    tasks = [task if shared[task.name] == 1 else
             replace(task, name=f'{task.function.__module__}.{task.function.__qualname__}')
             for task in registered]
    twice = [name for name, count in Counter(task.name for task in tasks).items() if count > 1]
    if twice:
        raise ValueError(f'two tasks are named {twice[0]}')
    return tasks


class TaskTimeout(BaseException):
    """A run outlived its task's timeout. Not an Exception, so that a task's
    own ``except Exception`` does not swallow it (as with gevent.Timeout)."""


@dataclass(frozen=True)
class Run:
    """The run going on: its task, its slot (None for ``--run``) and when
    the slot began (a Unix time). A task that works on time windows can use
    ``[due - period, due)`` to cover time with no gap and no overlap."""
    task: str
    slot: int
    due: float


_current = ContextVar('apiphant.background.run')


def current_run():
    """The Run of the task calling it, or None outside a run."""
    return _current.get(None)


def load(product):
    """``(package, module name, tasks, on_error)`` of a product's background
    module; a ProductError says what is missing or what failed to import."""
    package = locate(product)
    name = f'{package}.api.background'
    import_module(f'{package}.api')
    if importlib.util.find_spec(name) is None:
        raise ProductError(f'no module {name}: a product keeps its @seconds tasks in '
                           f'api/background.py or an api/background/ package')
    module = import_module(name)
    on_error = getattr(module, 'on_error', None)
    if on_error is not None and not callable(on_error):
        raise ProductError(f'{name}.on_error should be a function taking the error text')
    if not _registered:
        raise ProductError(f'{name} has no tasks: mark a function with @seconds(N) '
                           f'(from apiphant.background import seconds)')
    try:
        return package, name, tasks_of(_registered), on_error
    except ValueError as error:
        raise ProductError(f'{name}: {error}') from None


def call(task, on_error=None, slot=None, due=None):
    """Run ``task`` once, log its outcome with 0.2's lines, pass a failure to
    ``on_error``, and return OK, FAILED or INTERRUPTED."""
    token = _current.set(Run(task.name, slot, time.time() if due is None else due))
    timer = contextlib.nullcontext() if task.timeout is None else gevent.Timeout(
        task.timeout, TaskTimeout(f'{task.name} ran longer than its timeout of {task.timeout:g} s'))
    try:
        with timer:
            task.function()
    except gevent.GreenletExit:
        log.error('Task %s interrupted: it was still running at the stop deadline.', task.name)
        return INTERRUPTED
    except KeyboardInterrupt:
        raise
    except BaseException as exception:  # whatever a task raises, SystemExit too, is its own failure
        error = f'Task {task.name} failed:\n{_traceback(exception)}'
    else:
        log.info('Task %s: OK.', task.name)
        return OK
    finally:
        _current.reset(token)
    log.error('%s', error.rstrip())
    if on_error is not None:  # out of the except block: its own traceback is not chained to the task's
        _report(on_error, error)
    return FAILED


def _report(on_error, error):
    try:
        on_error(error)
    except _PASS_THROUGH:
        raise
    except BaseException as exception:
        log.error('on_error failed:\n%s', _traceback(exception).rstrip())
    else:
        log.info('on_error: OK.')


def _traceback(exception):
    """The traceback from the called function's frame down; the caller's
    frame, in this module, says nothing."""
    return ''.join(traceback.format_exception(type(exception), exception, exception.__traceback__.tb_next))


class Scheduler:
    """Each task in its own greenlet; ``claims`` decides whether a slot is
    this scheduler's to run (Alone: always; Claims: if it wins the claim)."""

    def __init__(self, tasks, claims, on_error=None):
        self.tasks, self.claims, self.on_error = tasks, claims, on_error
        # The clock and origin that give slots their identity: see apiphant.schedule.
        self.clock = time.time if claims.shared else time.monotonic
        self.origin = 0.0 if claims.shared else self.clock()
        self.stopping = gevent.event.Event()
        self.running = set()
        self.loops = []

    def start(self):
        self.loops = [gevent.spawn(self._loop, task) for task in self.tasks]

    def stop(self, timeout):
        """Start no new run; give the runs going on ``timeout`` seconds to
        finish, then interrupt them (each is logged)."""
        self.stopping.set()
        if self.running:
            log.info('waiting up to %g s for %s', timeout, ', '.join(sorted(self.running)))
        gevent.joinall(self.loops, timeout=timeout)
        gevent.killall([loop for loop in self.loops if not loop.dead], timeout=1)

    def _loop(self, task):
        clock, period, origin = self.clock, task.period, self.origin
        next_slot = slot_at(clock(), period, origin)  # the current one: a task runs at start-up
        while True:
            if self.stopping.wait(wait(clock(), period, next_slot, origin)):
                return
            found = due(clock(), period, next_slot, origin)
            if found is None:
                continue
            slot, missed = found
            if missed:
                log.warning('Task %s: %d slot(s) missed, the scheduler woke late '
                            '(a blocked event loop or a clock step)', task.name, missed)
            started = clock()
            self._run(task, slot, time.time() - (started - slot_start(slot, period, origin)))
            ended = clock()
            next_slot, skipped = after_run(slot, ended, period, origin)
            if skipped and not self.stopping.is_set():
                log.warning('Task %s: %d slot(s) skipped, its run took %.2f s and it runs '
                            'every %g s', task.name, skipped, ended - started, period)

    def _run(self, task, slot, due):
        if not self.claims.claim(task, slot):
            return
        self.running.add(task.name)
        try:
            outcome = call(task, self.on_error, slot, due)
        finally:
            self.running.discard(task.name)
        self.claims.finish(task, slot, outcome)


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
    configure_logging(args.log_level)
    try:
        url = database_url(args.database_url)
    except ValueError as error:
        args_parser.error(str(error))
    try:
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
            with contextlib.nullcontext() if url else hold_lock(args.lock_dir, package):
                schedule(Scheduler(tasks, claims, on_error), module, args.stop_timeout)
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


def schedule(scheduler, module, stop_timeout):
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
