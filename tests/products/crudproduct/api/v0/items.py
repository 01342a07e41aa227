"""Every kind of column, hidden ones, choices, and the opt-in actions.

Tests tag the rows they make with their own ``batch`` and query within it, so
that they share the table without seeing each other's rows."""
from apiphant.crud import ACTIONS, OPTIONAL_ACTIONS, Column, Table

items = Table('items',
    batch=Column(str, required=True, max_length=40),
    name=Column(str, max_length=100),
    count=Column(int, default=0),
    price=Column(float),
    is_active=Column(bool, default=True),
    color=Column(str, choices=['red', 'green', 'blue']),
    order=Column(int),  # an SQL keyword: quoted wherever it goes
    day=Column('date'),
    seen_at=Column('datetime'),
    secret=Column(str, hidden=True, writable=True),  # a client may set it, never see it
    internal=Column(str, hidden=True),  # neither
    created_at=Column('datetime', default='now', writable=False),
    actions=ACTIONS + OPTIONAL_ACTIONS,
)
