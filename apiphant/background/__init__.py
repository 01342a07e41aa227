"""``@seconds(N)`` tasks, and ``apiphant-background PRODUCT``, their scheduler:
the wing of apiphant that runs beside the API daemon, in its own process.

- ``tasks``: what a product's background module imports (``seconds``,
  ``current_run``, ``TaskTimeout``) and how the scheduler finds its tasks;
- ``schedule``: when a task is due, pure functions of time;
- ``claims``: who runs a slot (a lock file alone, claims in PostgreSQL);
- ``scheduler``: the tasks' greenlets, their logged outcomes and counts;
- ``cli``: the command line (``__main__``: ``python -m apiphant.background``).

Product modules import this package in the API daemon too, so what they use
comes from ``tasks`` alone; the scheduler's names are imported on first use,
which also lets ``python -m apiphant.background`` patch gevent before them.
"""
from apiphant.background.tasks import Run, Task, TaskTimeout, current_run, load, seconds, tasks_of
from apiphant.lazy import lazy

_LAZY = {
    'call': 'apiphant.background.scheduler',
    'Scheduler': 'apiphant.background.scheduler',
    'TaskStats': 'apiphant.background.scheduler',
    'main': 'apiphant.background.cli',
}

__all__ = ['seconds', 'Task', 'TaskTimeout', 'Run', 'current_run', 'tasks_of', 'load', *_LAZY]


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
