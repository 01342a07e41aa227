"""Anyone reads and lists; writing needs a caller (secure by default)."""
from apiphant.auth import ANYONE
from apiphant.crud import Column, Table

bulletins = Table('bulletins', text=Column(str, default=''), access={'list': ANYONE, 'read': ANYONE})
