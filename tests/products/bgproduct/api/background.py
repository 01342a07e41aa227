"""Tasks for tests/test_background.py. Each appends what it does, one JSON
line per event, to the file named by BG_RECORDS."""
import json
import os
import time

from apiphant.background import current_run, seconds


def record(event, **more):
    run = current_run()
    line = json.dumps({'event': event, 'at': time.monotonic(), 'slot': run and run.slot, **more})
    # One write in append mode: lines from concurrent tasks never interleave.
    fd = os.open(os.environ['BG_RECORDS'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode() + b'\n')
    finally:
        os.close(fd)


@seconds(1)
def tick():
    record('tick')


@seconds(1)
def slow():
    record('slow started')
    time.sleep(2.5)
    record('slow ended')


@seconds(1)
def fails():
    raise ValueError('boom from fails')


@seconds(1, timeout=0.3)
def hangs():
    time.sleep(30)


_calls = 0


def on_error(error):
    global _calls
    _calls += 1
    record('on_error', text=error)
    if _calls == 2:
        raise RuntimeError('on_error broke on its second call')
