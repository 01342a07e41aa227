"""The same table twice, but for watch: what recording each change costs a write."""
from apiphant.crud import ACTIONS, Column, Table

unwatched = Table('unwatched', title=Column(str, required=True), done=Column(bool, default=False),
                  points=Column(int, default=0), actions=ACTIONS)
