"""When a ``@seconds(N)`` task is due: pure functions of times, no clock read.

Time is cut into slots of N seconds: slot k spans ``[origin + k*N,
origin + (k+1)*N)`` and run k starts at its beginning. Computing every start
from ``origin`` rather than from the previous run means there is no
cumulative drift, and a late wake-up costs that one run its lateness only.

Which clock and origin the scheduler uses:

- alone (no database): ``time.monotonic()`` with origin the scheduler's start,
  so slot 0 runs at once (as 0.2 did) and a wall-clock step changes nothing;
- with a database: ``time.time()`` with origin 0, so that hosts agree on
  what "slot k" names (``floor(unix_time / N)``) without talking to each
  other, and claim it by that number. The wait itself is on gevent's
  monotonic timers, cut into pieces of at most ``MAX_WAIT`` seconds and
  re-read from the wall clock after each, so a clock step delays a run by at
  most that much beyond the step itself. (A step back of an hour does make
  that host wait an hour: its slots for that hour are claimed already.)

A run that is still going when its next slots begin makes those slots
skipped, never queued; a scheduler that wakes late (a blocked event loop, a
clock step forward) runs the slot it woke in and passes over the ones it
missed, so there is never a burst of catch-up runs.
"""
import math

__all__ = ['MAX_WAIT', 'slot_at', 'slot_start', 'due', 'wait', 'after_run']

MAX_WAIT = 1.0


def slot_at(now, period, origin=0.0):
    """The slot that contains ``now``."""
    return math.floor((now - origin) / period)


def slot_start(slot, period, origin=0.0):
    """When ``slot`` begins."""
    return origin + slot * period


def due(now, period, next_slot, origin=0.0):
    """``(slot, missed)`` to run at ``now``, where ``missed`` is how many
    slots from ``next_slot`` on were passed over; None while ``next_slot`` has
    not begun."""
    # Compared as times, not as slot numbers: floor((origin + k*N - origin)/N)
    # can be k - 1 for a fractional N, and the slot would never come.
    if now < slot_start(next_slot, period, origin):
        return None
    slot = max(next_slot, slot_at(now, period, origin))
    return slot, slot - next_slot


def wait(now, period, next_slot, origin=0.0):
    """Seconds to wait before looking again: until ``next_slot`` begins, but
    at most ``MAX_WAIT`` (so a wall-clock step is noticed); 0 when it has."""
    return min(max(slot_start(next_slot, period, origin) - now, 0.0), MAX_WAIT)


def after_run(slot, now, period, origin=0.0):
    """``(next_slot, skipped)`` once the run of ``slot`` ends at ``now``: the
    slots that began while it ran are skipped (coalesced, never queued)."""
    next_slot = max(slot, slot_at(now, period, origin)) + 1
    return next_slot, next_slot - slot - 1
