"""Notes: each caller watches and lists their own and the shared ones."""
from apiphant.crud import ACTIONS, Column, Table

notes = Table(
    'notes',
    text=Column(str, required=True),
    shared=Column(bool, default=False),
    author=Column(str, writable=False),
    owner='author',
    rules={'list': {'$or': [{'author': '$auth.id'}, {'shared': True}]}, 'update': {'author': '$auth.id'}},
    actions=ACTIONS + ('watch',),
)
