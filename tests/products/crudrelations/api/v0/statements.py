"""How many SQL statements the process has run: ``count`` says."""
import sqlalchemy as sa

from apiphant import action
from apiphant.crud import database

_counted = []


def _count(*args):
    _counted.append(1)


@action
def count(request):
    """The statements run since the first call."""
    engine = database().engine
    if not sa.event.contains(engine, 'before_cursor_execute', _count):
        sa.event.listen(engine, 'before_cursor_execute', _count)
    return {'statements': len(_counted)}
