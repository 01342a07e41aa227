"""apiphant.background: the real command on sample products (timing and
isolation, failures and on_error, log levels, stopping, --run and --list,
start-up errors, the lock file, two schedulers sharing PostgreSQL), the
package's imports, and the scheduler's counts in process.

Timing is checked from what the tasks record (their slot and a clock
reading) and from the log lines, with generous tolerances; waits poll for
an event instead of sleeping a guessed time."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter

import gevent
import pytest

from apiphant.background import Scheduler, Task, call, seconds, tasks_of
from apiphant.background.claims import Alone, CannotStart, Claims, database_url, hold_lock
from conftest import PRODUCTS, ROOT, skip_or_fail

COMMAND = [sys.executable, str(ROOT / 'bin' / 'apiphant-background')]
DATABASE = 'postgresql://postgres@127.0.0.1:5432/test'


def environment(**more):
    """The environment of a child: none of the caller's APIPHANT_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith('APIPHANT_')}
    return {**env, 'PYTHONWARNINGS': 'error', **more}


class Background:
    """A running ``apiphant-background``, its stderr in a file, and what its
    tasks record (one JSON object a line) in another."""

    def __init__(self, tmp_path, product, *args, env=None):
        name = uuid.uuid4().hex[:8]
        self.log_path = tmp_path / f'{name}.log'
        self.records_path = tmp_path / f'{name}.jsonl'
        with open(self.log_path, 'wb') as log:
            self.process = subprocess.Popen(
                [*COMMAND, str(product), '--lock-dir', str(tmp_path), *args], stdout=subprocess.DEVNULL,
                stderr=log, env=environment(BG_RECORDS=str(self.records_path), **(env or {})))

    @property
    def log(self):
        return self.log_path.read_text()

    def records(self, event=None):
        if not self.records_path.exists():
            return []
        found = [json.loads(line) for line in self.records_path.read_text().splitlines()]
        return [record for record in found if event is None or record['event'] == event]

    def wait_for(self, condition, timeout=10):
        """Poll until ``condition()`` is true, and return it."""
        deadline = time.monotonic() + timeout
        while not (found := condition()):
            assert self.process.poll() is None, f'the scheduler exited:\n{self.log}'
            assert time.monotonic() < deadline, f'timed out; the log:\n{self.log}'
            time.sleep(0.01)
        return found

    def stop(self, signum=signal.SIGTERM, timeout=10):
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def started(tmp_path):
    schedulers = []

    def start(product, *args, env=None):
        schedulers.append(Background(tmp_path, product, *args, env=env))
        return schedulers[-1]
    yield start
    for scheduler in schedulers:
        scheduler.kill()


def run(*args, env=None):
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=30,
                          env=environment(**(env or {})))


RECORD = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) \S+: (?P<message>.*)')


def leveled(log):
    """``(level, first line of the message)`` of each log record."""
    return [(match['level'], match['message']) for match in map(RECORD.fullmatch, log.splitlines()) if match]


def messages(log):
    """The first line of each log record's message."""
    return [message for _, message in leveled(log)]


def blocks(log, first_line):
    """The log records whose message is ``first_line``, each with the lines under it."""
    found, current = [], None
    for line in log.splitlines():
        match = RECORD.fullmatch(line)
        if match:
            current = [first_line] if match['message'] == first_line else None
            if current:
                found.append(current)
        elif current is not None:
            current.append(line)
    return ['\n'.join(record) for record in found]


def test_tasks_keep_time_apart_fail_alone_and_stop_gracefully(started):
    scheduler = started(PRODUCTS / 'bgproduct')
    # Slot 4: the 1 s tick runs, and slow's run of slot 3 has 1.5 s to go.
    scheduler.wait_for(lambda: any(r['slot'] == 4 for r in scheduler.records('tick')))
    sigterm_at = time.monotonic()
    assert scheduler.stop() == 0
    log = scheduler.log

    # The 1 s task ticks on time, slot after slot, beside the 2.5 s one.
    ticks = scheduler.records('tick')
    assert [tick['slot'] for tick in ticks] == list(range(len(ticks)))
    assert 5 <= len(ticks) <= 6
    for tick in ticks:
        assert abs(tick['at'] - ticks[0]['at'] - tick['slot']) < 0.2, ticks

    # The slow task never overlaps itself: each run starts on a slot after the
    # previous one ended, and the slots it overlapped are skipped and logged.
    slow = scheduler.records('slow started') + scheduler.records('slow ended')
    slow.sort(key=lambda record: record['at'])
    assert [record['event'] for record in slow] == ['slow started', 'slow ended'] * 2
    assert [record['slot'] for record in slow[::2]] == [0, 3]
    assert 'Task slow: 2 slot(s) skipped, its run took 2.5' in log

    # SIGTERM let the run of slot 3 finish, and started nothing new.
    assert slow[-1]['at'] > sigterm_at
    runs = scheduler.records('tick') + scheduler.records('slow started')
    assert [run for run in runs if run['at'] > sigterm_at + 0.5] == []
    assert messages(log)[-1] == 'stopped'
    assert re.search(r'waiting up to 8 s for (hangs, )?slow\n', log)

    # A failing task is logged with its traceback every period, and keeps its schedule.
    failures = blocks(log, 'Task fails failed:')
    assert len(ticks) - 1 <= len(failures) <= len(ticks)
    here = PRODUCTS / 'bgproduct' / 'api' / 'background.py'
    for failure in failures:
        # The traceback starts at the task's own frame.
        assert failure.startswith(f'Task fails failed:\nTraceback (most recent call last):\n  File "{here}"')
        assert failure.endswith("\nValueError: boom from fails")

    # A hung task is interrupted at its timeout and logged as failed.
    timeouts = blocks(log, 'Task hangs failed:')
    assert len(timeouts) >= len(ticks) - 1
    assert all(t.endswith('TaskTimeout: hangs ran longer than its timeout of 0.3 s') for t in timeouts)

    # on_error gets the same text; its own failure is logged, and the scheduler goes on.
    texts = [record['text'] for record in scheduler.records('on_error')]
    assert sorted(text.rstrip('\n') for text in texts) == sorted(failures + timeouts)
    assert all(text.endswith('\n') for text in texts)
    broken = blocks(log, 'on_error failed:')
    assert len(broken) == 1
    assert broken[0].startswith('on_error failed:\nTraceback (most recent call last):\n')
    assert broken[0].endswith('RuntimeError: on_error broke on its second call')
    assert 'During handling' not in broken[0]
    assert log.count('on_error: OK.') == len(texts) - 1
    assert log.rindex('on_error: OK.') > log.index('on_error failed:')

    # At the default level, successful runs say nothing; what went wrong does,
    # and so do start and stop.
    assert [message for message in messages(log) if message.endswith(': OK.')] == ['on_error: OK.'] * (len(texts) - 1)
    by_level = {}
    for level, message in leveled(log):
        by_level.setdefault(re.sub(r'^Task [\w.]+|\d+(\.\d+)?', '#', message), set()).add(level)
    assert by_level['# failed:'] == {'ERROR'}
    assert by_level['#: # slot(s) skipped, its run took # s and it runs every # s'] == {'WARNING'}
    assert by_level['on_error failed:'] == {'ERROR'}
    assert by_level['SIGTERM: starting no new run'] == by_level['stopped'] == {'INFO'}
    assert [level for level, message in leveled(log) if message.startswith('scheduling bgproduct.api.background,')] \
        == ['INFO']


def test_sigterm_interrupts_what_outlives_the_stop_timeout(started):
    scheduler = started(PRODUCTS / 'bgproduct', '--stop-timeout', '0.5')
    scheduler.wait_for(lambda: scheduler.records('slow started'))
    assert scheduler.stop() == 0
    assert 'Task slow interrupted: it was still running at the stop deadline.' in scheduler.log
    assert scheduler.records('slow ended') == []


def test_sigint_stops_at_once_and_a_second_scheduler_refuses_to_start(started, tmp_path):
    first = started(PRODUCTS / 'bgproduct')
    first.wait_for(lambda: first.records('slow started'))

    second = run(PRODUCTS / 'bgproduct', '--lock-dir', tmp_path)
    assert second.returncode == 1
    assert second.stderr.startswith('apiphant-background: another apiphant-background for '
                                    f'bgproduct runs on this host (pid {first.process.pid}, ')
    assert second.stderr.count('\n') == 1

    assert first.stop(signal.SIGINT, timeout=2) == 130
    assert first.records('slow ended') == []
    assert 'SIGINT: stopped at once' in first.log


def test_run_runs_one_task_once_and_exits_by_its_outcome(tmp_path):
    records = tmp_path / 'records.jsonl'
    ok = run(PRODUCTS / 'bgproduct', '--run', 'tick', env={'BG_RECORDS': str(records)})
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ''  # a success is logged at debug level
    verbose = run(PRODUCTS / 'bgproduct', '--run', 'tick', '--log-level', 'debug', env={'BG_RECORDS': str(records)})
    assert verbose.returncode == 0, verbose.stderr
    assert leveled(verbose.stderr)[-1] == ('DEBUG', 'Task tick: OK.')
    assert [json.loads(line)['event'] for line in records.read_text().splitlines()] == ['tick', 'tick']

    failed = run(PRODUCTS / 'bgproduct', '--run', 'fails', env={'BG_RECORDS': str(records)})
    assert failed.returncode == 1
    assert 'Task fails failed:\nTraceback (most recent call last):' in failed.stderr
    assert json.loads(records.read_text().splitlines()[-1])['text'].startswith('Task fails failed:')

    unknown = run(PRODUCTS / 'bgproduct', '--run', 'nope')
    assert unknown.returncode == 2
    assert "no task 'nope' in bgproduct.api.background; its tasks: tick, slow, fails, hangs" in unknown.stderr


def test_log_format_json_writes_one_object_a_line():
    failed = run(PRODUCTS / 'bgproduct', '--run', 'fails', '--log-format', 'json', env={'BG_RECORDS': '/dev/null'})
    assert failed.returncode == 1
    failure, reported = [json.loads(line) for line in failed.stderr.splitlines()]
    assert (failure['level'], failure['logger']) == ('error', 'apiphant.background')
    assert failure['message'].startswith('Task fails failed:\nTraceback (most recent call last):\n')
    assert (reported['level'], reported['message']) == ('info', 'on_error: OK.')


def test_list_shows_tasks_and_periods_and_runs_nothing():
    listed = run(PRODUCTS / 'bgpackage', '--list')
    assert listed.returncode == 0, listed.stderr
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ['TASK', 'EVERY', 'TIMEOUT', 'LAST', 'RUN', 'OUTCOME', 'HOST'],
        # Two tasks named cleanup: module-qualified names tell them apart.
        ['bgpackage.api.background.mail.cleanup', '60s', '-', '-', '-', '-'],
        ['send', '300s', '30s', '-', '-', '-'],
        ['bgpackage.api.background.reports.cleanup', '3600s', '-', '-', '-', '-'],
    ]


@pytest.mark.parametrize('source, says', [
    ('def broken(:\n', 'cannot import bgbad.api.background: SyntaxError: '),
    ('import bg_no_such_module\n', "cannot import bgbad.api.background: ModuleNotFoundError: "
                                   "No module named 'bg_no_such_module' ("),
    ('from apiphant.background import seconds\n\n@seconds\ndef f():\n    pass\n',
     'cannot import bgbad.api.background: TypeError: @seconds needs a period: @seconds(60), not @seconds'),
    ('def helper():\n    pass\n', 'bgbad.api.background has no tasks: mark a function with @seconds(N)'),
    (None, 'no module bgbad.api.background: a product keeps its @seconds tasks in api/background.py'),
], ids=['syntax', 'import', 'decorator', 'no-tasks', 'no-module'])
def test_a_product_that_cannot_be_scheduled_exits_with_one_line(tmp_path, source, says):
    api = tmp_path / 'bgbad' / 'api'
    api.mkdir(parents=True)
    (api.parent / '__init__.py').write_text('')
    (api / '__init__.py').write_text('')
    if source is not None:
        (api / 'background.py').write_text(source)
    result = run(api.parent, '--lock-dir', tmp_path)
    assert result.returncode == 1
    assert result.stdout == ''
    assert result.stderr.startswith(f'apiphant-background: {says}')
    assert result.stderr.count('\n') == 1


def test_a_bad_database_url_is_a_usage_error():
    result = run(PRODUCTS / 'bgproduct', '--database', 'mysql://localhost/test')
    assert result.returncode == 2
    assert 'the database URL should be sqlite:///PATH, postgresql://... or none, not mysql:...' \
        in result.stderr


def test_seconds_checks_its_arguments():
    for period in (0, -1, float('inf'), True, '60'):
        with pytest.raises(ValueError, match='period should be a positive number of seconds'):
            seconds(period)
    with pytest.raises(ValueError, match='timeout should be a positive number'):
        seconds(60, timeout=0)
    with pytest.raises(TypeError, match='goes on a function'):
        seconds(60)(42)


def test_two_tasks_cannot_have_one_name():
    # Names shared by functions of different modules are qualified (see the --list
    # test); the same function registered twice cannot be told apart.
    def cleanup():
        pass
    with pytest.raises(ValueError, match=r'two tasks are named \S+\.cleanup$'):
        tasks_of([Task('cleanup', cleanup, 60), Task('cleanup', cleanup, 1)])


def test_a_task_that_exits_fails_alone():
    def leaves():
        sys.exit(3)
    reported = []
    assert call(Task('leaves', leaves, 1), reported.append) == 'failed'
    assert reported[0].startswith('Task leaves failed:\nTraceback') and 'SystemExit: 3' in reported[0]


def test_a_success_is_logged_at_debug_and_a_failure_as_an_error(caplog):
    def fails():
        raise ValueError('no')
    with caplog.at_level(logging.DEBUG, logger='apiphant.background'):
        assert call(Task('quiet', lambda: None, 1)) == 'ok'
        assert call(Task('loud', fails, 1)) == 'failed'
    assert [(record.levelname, record.getMessage().split('\n')[0]) for record in caplog.records] == [
        ('DEBUG', 'Task quiet: OK.'), ('ERROR', 'Task loud failed:')]


def test_the_scheduler_counts_runs_failures_skipped_slots_and_durations():
    calls = Counter()

    def counted(name, then=None):
        def task():
            calls[name] += 1
            if then:
                then()
        return Task(name, task, 0.05)

    def fail():
        raise ValueError('no')
    scheduler = Scheduler([counted('quick'), counted('fails', fail), counted('slow', lambda: gevent.sleep(0.2))],
                          Alone())
    stats = scheduler.stats
    scheduler.start()
    deadline = time.monotonic() + 10
    while not (stats['slow'].runs >= 2 and stats['quick'].runs >= 3 and stats['fails'].runs >= 3):
        assert time.monotonic() < deadline, stats
        gevent.sleep(0.01)
    scheduler.stop(5)

    assert {name: stats[name].runs for name in stats} == dict(calls)
    assert (stats['quick'].failures, stats['quick'].last_outcome) == (0, 'ok')
    assert (stats['fails'].failures, stats['fails'].last_outcome) == (calls['fails'], 'failed')
    # A 0.2 s run of a 0.05 s task skips slots, but the last one may
    # have ended after the stop, when nothing is skipped any more.
    assert stats['slow'].skipped >= stats['slow'].runs - 1 >= 1
    assert stats['slow'].last_duration >= 0.1
    assert all(stats[name].last_duration >= 0 for name in stats)


def test_python_m_apiphant_background_is_the_command():
    listed = subprocess.run([sys.executable, '-m', 'apiphant.background', str(PRODUCTS / 'bgpackage'), '--list'],
                            capture_output=True, text=True, timeout=30, env=environment())
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == run(PRODUCTS / 'bgpackage', '--list').stdout
    bare = subprocess.run([sys.executable, '-m', 'apiphant.background'], capture_output=True, text=True,
                          timeout=30, env=environment())
    assert bare.returncode == 2
    assert bare.stderr.startswith('usage: apiphant-background PRODUCT [options]\n')
    assert 'the following arguments are required: product' in bare.stderr


def test_a_product_importing_seconds_imports_no_scheduler():
    # Product modules import apiphant.background in the API daemon too.
    probe = (
        'import json, sys\n'
        'from apiphant.background import TaskTimeout, current_run, seconds\n'
        'print(json.dumps(sorted(sys.modules)))\n'
        'from apiphant.background import Scheduler, TaskStats, call, main\n'
        'import apiphant.background.scheduler as scheduler, apiphant.background.cli as cli\n'
        'assert (Scheduler, TaskStats, call, main) == (scheduler.Scheduler, scheduler.TaskStats, scheduler.call, '
        'cli.main)\n'
        'try:\n'
        '    from apiphant.background import schedulr\n'
        'except ImportError as error:\n'
        '    print(error)\n')
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=30,
                            env=environment())
    assert result.returncode == 0, result.stderr
    imported, refused = result.stdout.splitlines()
    heavy = [name for name in json.loads(imported) if name.split('.')[0] in ('gevent', 'psycopg', 'sqlalchemy')
             or name in ('apiphant.background.scheduler', 'apiphant.background.claims', 'apiphant.background.cli')]
    assert heavy == []
    assert refused.startswith("cannot import name 'schedulr' from 'apiphant.background'")


def test_database_urls():
    assert database_url('postgresql+psycopg://u@h/db') == 'postgresql://u@h/db'
    assert database_url('postgres://h/db?sslmode=require') == 'postgresql://h/db?sslmode=require'
    # No database, or SQLite (the API's tables, on one host): the scheduler runs alone.
    assert database_url('none') is database_url('sqlite:////srv/myproduct.sqlite3') is None
    with pytest.raises(ValueError):
        database_url('mysql://h/db')


def test_the_lock_is_held_until_its_file_is_closed(tmp_path):
    with hold_lock(str(tmp_path), 'bgproduct'):
        with pytest.raises(CannotStart, match=f'pid {os.getpid()}, lock {tmp_path}'):
            hold_lock(str(tmp_path), 'bgproduct')
    hold_lock(str(tmp_path), 'bgproduct').close()


@pytest.fixture
def database():
    """A URL to a fresh schema of the test database (its search_path), and a
    connection to it; the schema is dropped after the test."""
    try:
        import psycopg
    except ImportError as error:
        skip_or_fail(f'psycopg is not installed: {error}')
    try:
        admin = psycopg.connect(DATABASE, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        skip_or_fail(f'no PostgreSQL at {DATABASE}: {error}')
    schema = f'bg_{os.getpid()}_{uuid.uuid4().hex[:8]}'
    admin.execute(f'CREATE SCHEMA {schema}')
    admin.execute(f'SET search_path = {schema}')
    try:
        yield f'{DATABASE}?options=-csearch_path%3D{schema}', admin
    finally:
        admin.execute(f'DROP SCHEMA {schema} CASCADE')
        admin.close()


def test_two_schedulers_share_postgresql_and_run_each_slot_once(started, database):
    url, db = database
    db.execute('CREATE TABLE bg_ticks (task text, slot bigint, pid int, at double precision)')
    env = {'APIPHANT_DATABASE_URL': url}
    product = PRODUCTS / 'bgpgproduct'
    sqlalchemy_url = url.replace('postgresql://', 'postgresql+psycopg://', 1)
    schedulers = {s.process.pid: s for s in (
        started(product, env=env), started(product, '--database', sqlalchemy_url, env=env))}

    def rows():
        return db.execute('SELECT slot, pid, at FROM bg_ticks ORDER BY slot, at').fetchall()

    first = next(iter(schedulers.values()))
    # A run at start-up starts late in its slot and may still go on when the next
    # slot begins, which is then skipped: slots are checked from the one after.
    steady = first.wait_for(rows, timeout=5)[0][0] + 2
    first.wait_for(lambda: rows()[-1][0] >= steady + 10, timeout=20)

    # Kill the scheduler that runs the slot going on now (its task sleeps 0.4 s after its insert).
    def running_now():
        slot, pid, at = rows()[-1]
        return time.time() - at < 0.2 and (slot, pid)
    killed_slot, killed_pid = first.wait_for(running_now, timeout=5)
    schedulers.pop(killed_pid).kill()
    [(survivor_pid, survivor)] = schedulers.items()
    survivor.wait_for(lambda: rows()[-1][0] >= killed_slot + 3, timeout=10)
    assert survivor.stop() == 0

    # A scheduler started again knows from the claims which slots ran: its
    # start-up run is of a slot that has not (the no-duplicate check below).
    last_slot = rows()[-1][0]
    restarted = started(product, env=env)
    restarted.wait_for(lambda: rows()[-1][0] > last_slot)
    assert restarted.stop() == 0

    found = rows()
    assert [slot for slot, count in Counter(row[0] for row in found).items() if count > 1] == []
    # Up to last_slot (after it, no scheduler ran for a moment), each slot ran, on time.
    steady_rows = [row for row in found if steady <= row[0] <= last_slot]
    assert [row[0] for row in steady_rows] == list(range(steady, last_slot + 1)), 'a slot was not run'
    assert all(0 <= at - slot < 0.5 for slot, _, at in steady_rows), steady_rows
    # The survivor carried on from the next slot.
    assert [pid for slot, pid, _ in found if killed_slot < slot <= last_slot] == \
        [survivor_pid] * (last_slot - killed_slot)

    claims = db.execute('SELECT slot, host, outcome FROM apiphant_task_claims '
                        "WHERE product = 'bgpgproduct' AND task = 'tick' ORDER BY slot").fetchall()
    assert [claim[0] for claim in claims] == [row[0] for row in found]
    assert all(host.endswith(f':{pid}') for (_, host, _), (_, pid, _) in zip(claims, found))
    assert {slot: outcome for slot, _, outcome in claims}[killed_slot] is None
    assert {outcome for slot, _, outcome in claims if slot != killed_slot} == {'ok'}

    listed = run(product, '--list', env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == ['tick', '1s']
    assert listed.stdout.splitlines()[1].split()[-2:] == ['ok', f'{socket.gethostname()}:{restarted.process.pid}']


def test_a_claim_is_won_once_and_a_failed_one_leaves_no_lock_behind(database, caplog):
    url, db = database
    claims = Claims(url, 'bgunit', 'here:1')
    claims.prepare()
    task = Task('sync', None, 60)
    held_elsewhere = "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || '.bgunit.sync', 0))"
    try:
        assert claims.claim(task, 7) is True
        assert db.execute(held_elsewhere).fetchone()[0] is False  # while it runs here
        claims.finish(task, 7, 'ok')
        assert claims.claim(task, 7) is False  # that slot ran already
        assert claims.runs()['sync'][1:] == ['ok', 'here:1']

        assert db.execute(held_elsewhere).fetchone()[0] is True  # as another host running it
        assert claims.claim(task, 8) is False
        db.execute('SELECT pg_advisory_unlock_all()')

        db.execute('DROP TABLE apiphant_task_claims')
        assert claims.claim(task, 9) is False
        assert 'Task sync: slot 9 skipped, it cannot be claimed: relation "apiphant_task_claims" ' \
               'does not exist' in caplog.text
        assert db.execute(held_elsewhere).fetchone()[0] is True
    finally:
        claims.close()


def test_a_task_holding_the_event_loop_is_named(caplog):
    """A task computing for a second without waiting: every other task
    waited, and the warning says which task ran meanwhile."""
    def spin():
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
    scheduler = Scheduler([Task('spinner', spin, 60), Task('waiter', lambda: gevent.sleep(0), 60)], Alone())
    with caplog.at_level(logging.WARNING, logger='apiphant.background'):
        scheduler.start()
        deadline = time.monotonic() + 10
        while scheduler.stats['spinner'].runs < 1:
            assert time.monotonic() < deadline
            gevent.sleep(0.05)
        gevent.sleep(0.3)  # the watch wakes, late
        scheduler.stop(5)
    held = [r.getMessage() for r in caplog.records if 'held the event loop' in r.getMessage()]
    assert len(held) == 1 and held[0].startswith('Task spinner held the event loop for '), held


def test_a_tasks_table_writes_land_in_the_schedulers_postgresql(database):
    url, db = database
    product = PRODUCTS / 'bgcrud'
    beside = PRODUCTS / 'bgcrud.sqlite3'
    existed = beside.exists()
    result = run(product, '--run', 'note', '--database-url', url)
    assert result.returncode == 0, result.stderr
    assert db.execute('SELECT text, version FROM bg_notes').fetchall() == [('written by the scheduler', 1)]
    assert db.execute("SELECT task, outcome FROM apiphant_task_runs WHERE product = 'bgcrud'").fetchall() \
        == [('note', 'ok')]
    assert beside.exists() == existed


def test_a_database_that_refuses_the_scheduler_stops_it_in_one_line(database):
    result = run(PRODUCTS / 'bgcrud', '--database-url', 'postgresql://postgres@127.0.0.1:5432/apiphant_no_such_db')
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1, result.stderr
    assert 'database "apiphant_no_such_db" does not exist' in result.stderr
