"""Notes with an owner and no rule of their own: each caller's notes only.
The owner column is text: an id 7 is stored as '7'."""
from apiphant.crud import ACTIONS, Column, Table

notes = Table('notes', text=Column(str, required=True), author=Column(str, writable=False),
              owner='author', actions=ACTIONS + ('group',))
