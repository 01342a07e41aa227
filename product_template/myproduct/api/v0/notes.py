"""Notes: a table, and the actions generated for it.

POST /api/v0/notes/create, read, update, delete and list answer. The rows
live in the SQLite file myproduct.sqlite3 beside the product, or in the
database of APIPHANT_DATABASE_URL (deploy/settings.sh: DATABASE_URL).
"""
from apiphant.crud import Column, Table

notes = Table(
    'notes',
    text=Column(str, required=True, max_length=1000),
    created_at=Column('datetime', default='now', writable=False),
)
