"""Projects: deleting one deletes its items (cascade) and unlinks its links (set null); all watched."""
from apiphant.auth import ANYONE
from apiphant.crud import ACTIONS, Column, Table

ACCESS = ANYONE

projects = Table('projects', name=Column(str, required=True), actions=ACTIONS + ('watch',))
