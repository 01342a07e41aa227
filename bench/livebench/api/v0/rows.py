"""The watched table: one row per group; bench/live.py's watchers each watch
``{"group": k}``, its updates set ``n`` (the update's number) on one row.
The table's name is its own (``livebench_rows``), so that it shares no
PostgreSQL table with other products."""
from apiphant.crud import ACTIONS, Column, Table

rows = Table('livebench_rows',
    group=Column(int, required=True),
    n=Column(int, default=0),
    actions=ACTIONS + ('watch',),
)
