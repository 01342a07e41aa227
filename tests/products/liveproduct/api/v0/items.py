from apiphant.auth import ANYONE
from apiphant.crud import ACTIONS, Column, Table

ACCESS = ANYONE

items = Table('items', name=Column(str, required=True),
              project=Column(int, references='projects', on_delete='cascade'), actions=ACTIONS + ('watch',))
