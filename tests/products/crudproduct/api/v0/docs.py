"""Long text: a column without a length limit, and a small answer budget."""
from apiphant.crud import ACTIONS, OPTIONAL_ACTIONS, Column, Table

docs = Table('docs',
    batch=Column(str, required=True, max_length=40),
    body=Column(str, max_length=None),
    summary=Column(str),  # the default max_length
    max_answer_text=10_000,
    actions=ACTIONS + OPTIONAL_ACTIONS,
)
