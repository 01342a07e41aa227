"""tests/products/crudproduct's tasks table, with an index on the columns
bench/crud_peer.py's list filters and sorts by (bench/peers/fastapi_crud.py
declares the same)."""
from apiphant.crud import Column, Table

tasks = Table('tasks',
    title=Column(str, required=True, max_length=200),
    is_completed=Column(bool, default=False),
    spent_time=Column(int, default=0),
    created_at=Column('datetime', default='now', writable=False),
    indexes=[('is_completed', 'spent_time')],
)
