"""Start jitter and drift of apiphant-background: a 1 s task under the real
scheduler (the ``apiphant-background`` command, in its own process) for N
seconds, then SIGTERM.

    .venv/bin/python bench/background_jitter.py [--seconds 60] [--database URL]

Jitter is how late each run starts after its slot begins, as the task sees
it (``time.time() - current_run().due``). Drift compares the task's own monotonic clock readings: the last
start against the first start plus k periods. The first run, made at
start-up (late in its slot when slots are wall-clock ones), is left out. With ``--database`` (a
PostgreSQL URL) the scheduler claims every slot there, in a schema made for
the run and dropped after it.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERIOD = 1

TASK = f'''
import json, os, time
from apiphant.background import current_run, seconds


@seconds({PERIOD})
def tick():
    wall, mono = time.time(), time.monotonic()
    run = current_run()
    with open(os.environ['BENCH_RECORDS'], 'a') as out:
        out.write(json.dumps({{'slot': run.slot, 'late': wall - run.due, 'at': mono}}) + '\\n')
'''


def measure(duration, database=None):
    with tempfile.TemporaryDirectory() as directory:
        product = Path(directory) / 'bgbench'
        (product / 'api').mkdir(parents=True)
        (product / '__init__.py').write_text('')
        (product / 'api' / '__init__.py').write_text('')
        (product / 'api' / 'background.py').write_text(TASK)
        records = Path(directory) / 'records.jsonl'
        env = {key: value for key, value in os.environ.items() if not key.startswith('APIPHANT_')}
        env.update(BENCH_RECORDS=str(records), APIPHANT_LOCK_DIR=directory, APIPHANT_LOG_LEVEL='warning')
        if database:
            env['APIPHANT_DATABASE_URL'] = database
        process = subprocess.Popen([sys.executable, str(ROOT / 'bin' / 'apiphant-background'), str(product)],
                                   env=env)
        try:
            time.sleep(duration + 0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
        return [json.loads(line) for line in records.read_text().splitlines()]


def report(runs):
    runs = runs[1:]  # the run made at start-up, late in its slot when slots are wall-clock ones
    slots = [run['slot'] for run in runs]
    missing = (slots[-1] - slots[0] + 1) - len(set(slots))
    late = sorted(run['late'] * 1000 for run in runs)
    p50, p99 = (statistics.quantiles(late, n=100, method='inclusive')[i] for i in (49, 98))
    first, last = runs[0], runs[-1]
    span = (last['slot'] - first['slot']) * PERIOD
    drift = (last['at'] - first['at'] - span) * 1000
    print(f'runs: {len(runs)} (slots {slots[0]}..{slots[-1]}, {missing} missed)')
    print(f'start jitter after the slot began: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {late[-1]:.2f} ms')
    print(f'drift over {span} s: {drift:+.2f} ms (last start against the first start + {span} x {PERIOD} s)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=60, help='how long to run (default 60)')
    parser.add_argument('--database', help='a PostgreSQL URL: claim every slot there')
    args = parser.parse_args()
    if not args.database:
        return report(measure(args.seconds))
    import psycopg
    schema = f'bench_{uuid.uuid4().hex[:8]}'
    with psycopg.connect(args.database, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA {schema}')
        try:
            separator = '&' if '?' in args.database else '?'
            report(measure(args.seconds, f'{args.database}{separator}options=-csearch_path%3D{schema}'))
        finally:
            admin.execute(f'DROP SCHEMA {schema} CASCADE')


if __name__ == '__main__':
    main()
