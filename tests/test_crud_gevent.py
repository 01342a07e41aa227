"""psycopg under gevent: the floor setup.py admits, and the installed version
waiting cooperatively (psycopg 3.1.5 to 3.1.13 hold the hub while a query
runs: three pg_sleep(0.5) in greenlets took 1.5 s on 3.1.13, 0.5 s on 3.1.14)."""
import re
import subprocess
import sys

from apiphant.crud.storage import PSYCOPG_FLOOR
from conftest import ROOT, skip_or_fail
from test_crud import POSTGRESQL

# Three queries of 0.3 s in greenlets, and a greenlet that ticks every 10 ms
# meanwhile; prints the ticks seen while the queries ran and whether they overlapped.
PROBE = '''
from gevent import monkey
monkey.patch_all()
import sys, time, gevent, psycopg

def query():
    with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=3) as connection:
        started = time.monotonic()
        connection.execute('SELECT pg_sleep(0.3)')
        return started, time.monotonic()

ticks = []
def tick():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)

ticker = gevent.spawn(tick)
gevent.sleep(0.02)
spans = [g.get() for g in [gevent.spawn(query) for _ in range(3)]]
ticker.kill()
first_end = min(end for _, end in spans)
last_start = max(start for start, _ in spans)
print(psycopg.__version__, sum(last_start < t < first_end for t in ticks), last_start < first_end)
'''


def floors():
    """The psycopg floors of setup.py's extras, as tuples."""
    text = (ROOT / 'setup.py').read_text()
    return [tuple(map(int, found.split('.'))) for found in re.findall(r"'psycopg\[binary\]>=([\d.]+)'", text)]


def test_setup_admits_no_psycopg_that_blocks_gevent():
    found = floors()
    assert len(found) == 2  # the postgresql and test extras
    assert all(floor >= PSYCOPG_FLOOR for floor in found), found


def test_the_installed_psycopg_waits_cooperatively():
    import psycopg
    try:
        psycopg.connect(POSTGRESQL, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        skip_or_fail(f'PostgreSQL is not reachable at {POSTGRESQL}: {" ".join(str(error).split())}')
    completed = subprocess.run([sys.executable, '-c', PROBE, POSTGRESQL], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stderr
    version, ticks, overlapped = completed.stdout.split()
    assert version == psycopg.__version__
    assert overlapped == 'True'  # the three ran at once
    assert int(ticks) >= 3  # and the hub ran other greenlets meanwhile (a blocking wait: 0)
