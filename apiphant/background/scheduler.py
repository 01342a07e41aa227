"""The scheduler: each task in its own greenlet on its own schedule
(``apiphant.background.schedule``): run k starts at its slot's beginning, a
run never overlaps the task's previous one, and a slow or hung task delays no
other, as long as it waits cooperatively (I/O and sleeps, under gevent's
monkey-patching).

Outcomes are logged with 0.2's lines: a success at DEBUG (a 10 s task
would write 8,640 of them a day), a failure, a timeout or a skipped slot at
WARNING or ERROR. Each task's counts are kept in a ``TaskStats``, for a
metrics export to read.

A task that computes without waiting holds the one event loop, and every
other task waits: greenlet's trace of each switch times how long a task's
greenlet kept it, and the watch greenlet says which task held it, and how
long (CPU work belongs in a process, or in a thread for C code that releases
the GIL).
"""
import contextlib
import logging
import time
import traceback
from dataclasses import dataclass

import gevent
import gevent.event
import greenlet

from apiphant import metrics
from apiphant.background.schedule import after_run, due, slot_at, slot_start, wait
from apiphant.background.tasks import Run, TaskTimeout, _current

__all__ = ['OK', 'FAILED', 'INTERRUPTED', 'call', 'TaskStats', 'Scheduler']

log = logging.getLogger('apiphant.background')

OK, FAILED, INTERRUPTED = 'ok', 'failed', 'interrupted'
WATCH_TICK = 0.5  # seconds between two looks of the watch greenlet
HELD = 0.5  # seconds a task may keep the event loop before it is said to hold it
_PASS_THROUGH = (gevent.GreenletExit, KeyboardInterrupt)


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
        log.debug('Task %s: OK.', task.name)
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


@dataclass
class TaskStats:
    """What this scheduler did with one task since it started. Only the
    task's own loop writes it, between runs; a reader in another greenlet
    sees whole updates (greenlets switch only at waits)."""
    runs: int = 0  # runs finished here, whatever their outcome
    failures: int = 0  # of those, the ones that failed, timed out or were interrupted
    skipped: int = 0  # slots passed over: overlapped by a long run, or missed by a late wake-up
    last_duration: float = None  # seconds, of the last finished run
    last_outcome: str = None  # OK, FAILED or INTERRUPTED


class Scheduler:
    """Each task in its own greenlet; ``claims`` decides whether a slot is
    this scheduler's to run (Alone: always; Claims: if it wins the claim).
    ``stats`` maps each task's name to its TaskStats."""

    def __init__(self, tasks, claims, on_error=None):
        self.tasks, self.claims, self.on_error = tasks, claims, on_error
        # The clock and origin that give slots their identity: see apiphant.background.schedule.
        self.clock = time.time if claims.shared else time.monotonic
        self.origin = 0.0 if claims.shared else self.clock()
        self.stopping = gevent.event.Event()
        self.running = set()
        self.names = {}  # a task's greenlet: its name
        self.held = []  # (task name, seconds) it kept the event loop, not said yet
        self.entered = 0.0
        self.previous_trace = None
        self.loops = []
        self.stats = {task.name: TaskStats() for task in tasks}

    def start(self):
        self.loops = [gevent.spawn(self._loop, task) for task in self.tasks]
        self.names = {loop: task.name for loop, task in zip(self.loops, self.tasks)}
        self.entered = time.monotonic()
        self.previous_trace = greenlet.settrace(self._trace)
        self.loops.append(gevent.spawn(self._watch))

    def _trace(self, event, args):
        """At each switch: how long the greenlet left kept running. Only
        noted here (a switch is no place to log); the watch says it."""
        if event in ('switch', 'throw'):
            now = time.monotonic()
            name = self.names.get(args[0])
            if name is not None and now - self.entered > HELD:
                self.held.append((name, now - self.entered))
            self.entered = now
        if self.previous_trace is not None:
            self.previous_trace(event, args)

    def _watch(self):
        while not self.stopping.wait(WATCH_TICK):
            self._say_held()
        self._say_held()

    def _say_held(self):
        held, self.held = self.held, []
        for name, seconds in held:
            log.warning('Task %s held the event loop for %.1f s without waiting: every other task waited. '
                        'Work that computes belongs in a process (or a thread, for C code that releases the '
                        'GIL)', name, seconds)

    def stop(self, timeout):
        """Start no new run; give the runs going on ``timeout`` seconds to
        finish, then interrupt them (each is logged)."""
        self.stopping.set()
        if self.running:
            log.info('waiting up to %g s for %s', timeout, ', '.join(sorted(self.running)))
        gevent.joinall(self.loops, timeout=timeout)
        gevent.killall([loop for loop in self.loops if not loop.dead], timeout=1)
        greenlet.settrace(self.previous_trace)

    def _loop(self, task):
        clock, period, origin, stats = self.clock, task.period, self.origin, self.stats[task.name]
        next_slot = slot_at(clock(), period, origin)  # the current one: a task runs at start-up
        while True:
            if self.stopping.wait(wait(clock(), period, next_slot, origin)):
                return
            found = due(clock(), period, next_slot, origin)
            if found is None:
                continue
            slot, missed = found
            if missed:
                stats.skipped += missed
                log.warning('Task %s: %d slot(s) missed, the scheduler woke late '
                            '(a blocked event loop or a clock step)', task.name, missed)
            started = clock()
            self._run(task, slot, time.time() - (started - slot_start(slot, period, origin)))
            ended = clock()
            next_slot, skipped = after_run(slot, ended, period, origin)
            if skipped and not self.stopping.is_set():
                stats.skipped += skipped
                log.warning('Task %s: %d slot(s) skipped, its run took %.2f s and it runs '
                            'every %g s', task.name, skipped, ended - started, period)

    def _run(self, task, slot, due):
        if not self.claims.claim(task, slot):
            return
        self.running.add(task.name)
        started = time.monotonic()
        try:
            outcome = call(task, self.on_error, slot, due)
        finally:
            self.running.discard(task.name)
        self._count(task, outcome, time.monotonic() - started)
        self.claims.finish(task, slot, outcome)

    def _count(self, task, outcome, duration):
        stats = self.stats[task.name]
        stats.runs += 1
        stats.failures += outcome != OK
        stats.last_duration, stats.last_outcome = duration, outcome
        metrics.task_run(task.name, outcome != OK, duration)
