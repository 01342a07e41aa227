from apiphant.auth import ANYONE
from apiphant.crud import ACTIONS, Column, Table

ACCESS = ANYONE

links = Table('links', name=Column(str, required=True),
              project=Column(int, references='projects', on_delete='set null'), actions=ACTIONS + ('watch',))
