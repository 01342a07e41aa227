from apiphant.crud import ACTIONS, Column, Table

watched = Table('watched', title=Column(str, required=True), done=Column(bool, default=False),
                points=Column(int, default=0), actions=ACTIONS + ('watch',))
