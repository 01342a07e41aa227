"""A task for the PostgreSQL test of tests/test_background.py: each run
inserts its slot into bg_ticks, then stays busy a while, so that a scheduler
can be killed in the middle of a run."""
import os
import time

import psycopg

from apiphant.background import current_run, seconds
from apiphant.background.claims import database_url


@seconds(1)
def tick():
    with psycopg.connect(database_url(os.environ['APIPHANT_DATABASE_URL']), autocommit=True) as db:
        db.execute('INSERT INTO bg_ticks (task, slot, pid, at) VALUES (%s, %s, %s, %s)',
                   ('tick', current_run().slot, os.getpid(), time.time()))
    time.sleep(0.4)
