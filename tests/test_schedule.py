"""apiphant.background.schedule: "is it due?" as pure functions of times. Nothing here
reads a clock or sleeps."""
import pytest

from apiphant.background.schedule import MAX_WAIT, after_run, due, slot_at, slot_start, wait

T0 = 1000.25  # a monotonic origin: the scheduler's start


def test_slots_are_cut_from_the_origin():
    assert [slot_at(T0 + t, 1, T0) for t in (0, 0.999, 1, 2.5)] == [0, 0, 1, 2]
    assert slot_start(3, 1, T0) == T0 + 3
    assert slot_at(T0 - 0.5, 1, T0) == -1


def test_wall_clock_slots_are_the_same_on_every_host():
    # With a database, origin 0: slot = floor(unix_time / period), whoever computes it.
    now = 1_700_000_123.4
    assert slot_at(now, 60) == 28_333_335
    assert slot_start(28_333_335, 60) == 1_700_000_100
    assert slot_at(now + 0.3, 60) == slot_at(now - 0.3, 60)


def test_a_slot_is_due_from_its_start_to_its_end():
    assert due(T0 + 4.999, 1, 5, T0) is None
    assert due(T0 + 5, 1, 5, T0) == (5, 0)
    assert due(T0 + 5.7, 1, 5, T0) == (5, 0)  # a little late: still this slot's run


def test_waking_late_runs_once_and_counts_the_slots_passed_over():
    # Stalled from 5 to 8.2: slot 8 runs now, 5 to 7 are missed, no burst of catch-up runs.
    assert due(T0 + 8.2, 1, 5, T0) == (8, 3)


def test_run_k_starts_at_origin_plus_k_periods_whatever_came_before():
    # A simulated loop: runs of changing lengths, wake-ups a little late. Starts
    # stay on the grid (no cumulative drift), and a run never overlaps the previous one.
    period, now, next_slot, starts, ends = 1.0, T0, 0, [], []
    for length in (0.2, 0.9, 2.5, 0.1, 1.0, 0.3, 4.2, 0.5):
        now += wait(now, period, next_slot, T0)
        while due(now, period, next_slot, T0) is None:
            now += wait(now, period, next_slot, T0)
        now += 0.003  # the wake-up jitter
        slot, missed = due(now, period, next_slot, T0)
        assert missed == 0
        starts.append(slot)
        assert not ends or now >= ends[-1]
        now += length
        ends.append(now)
        next_slot, skipped = after_run(slot, now, period, T0)
    assert starts == [0, 1, 2, 5, 6, 8, 9, 14]
    assert [slot_start(slot, period, T0) - T0 for slot in starts] == starts


def test_fractional_periods_are_not_stuck_by_rounding():
    # floor((k * 0.1) / 0.1) is k - 1 for some k; due() compares times, so
    # every slot is due exactly at its start.
    origin, period = 0.0, 0.1
    stuck = [k for k in range(1, 2000) if slot_at(slot_start(k, period, origin), period, origin) != k]
    assert stuck, 'this test needs a k where slot numbers round down'
    for k in stuck:
        assert due(slot_start(k, period, origin), period, k, origin) == (k, 0)
        assert wait(slot_start(k, period, origin), period, k, origin) == 0


def test_wait_is_until_the_slot_but_never_longer_than_max_wait():
    assert wait(T0 + 4.75, 1, 5, T0) == pytest.approx(0.25)
    assert wait(T0 + 5.1, 1, 5, T0) == 0
    assert wait(T0, 3600, 1, T0) == MAX_WAIT


def test_a_wall_clock_step_back_is_waited_out_in_short_pieces():
    # The wall clock steps back an hour before slot 5 of a 1 s task: the
    # scheduler looks again within MAX_WAIT instead of sleeping on a stale deadline.
    now = 1_700_000_004.5 - 3600
    assert due(now, 1, 1_700_000_005) is None
    assert wait(now, 1, 1_700_000_005) == MAX_WAIT


def test_a_wall_clock_step_forward_runs_the_current_slot_once():
    assert due(1_700_003_605.1, 1, 1_700_000_005) == (1_700_003_605, 3600)


@pytest.mark.parametrize('ended, expected', [
    (T0 + 5.3, (6, 0)),   # done within its slot: the next slot as usual
    (T0 + 7.5, (8, 2)),   # a 2.5 s run of a 1 s task: slots 6 and 7 are skipped, not queued
    (T0 + 4.0, (6, 0)),   # the wall clock stepped back during the run
])
def test_after_a_run_the_slots_it_overlapped_are_skipped(ended, expected):
    assert after_run(5, ended, 1, T0) == expected
