"""Each second, one of the schedulers (they claim each run in PostgreSQL) writes a task."""
from apiphant.background import current_run, seconds

from liveproduct.api.v0.tasks import tasks


@seconds(1)
def tick():
    tasks.create({'title': f'tick {current_run().slot}'})
