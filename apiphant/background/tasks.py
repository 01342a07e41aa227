"""What a product's background module uses: ``@seconds(N)``, ``current_run()``,
``TaskTimeout``; and how the scheduler finds the tasks it declared.

Product modules import this in the API daemon too (a module shared by an
action and a task), so it imports neither gevent nor a database driver.
"""
import importlib.util
import math
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, replace

from apiphant.product import ProductError, import_module, locate

__all__ = ['seconds', 'Task', 'TaskTimeout', 'Run', 'current_run', 'tasks_of', 'load']


@dataclass(frozen=True)
class Task:
    """One ``@seconds`` task: what the scheduler runs and ``--list`` shows."""
    name: str
    function: object
    period: float
    timeout: float = None


_registered = []


def seconds(period, *, timeout=None):
    """``@seconds(60)`` runs the function every 60 seconds in
    ``apiphant-background``; ``@seconds(60, timeout=30)`` also interrupts a
    run that lasts longer than 30 seconds and logs it as failed."""
    for name, value in (('period', period), ('timeout', timeout)):
        if value is None and name == 'timeout':
            continue
        if callable(value):
            raise TypeError('@seconds needs a period: @seconds(60), not @seconds')
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f'@seconds: {name} should be a positive number of seconds, not {value!r}')

    def register(function):
        if not callable(function) or not hasattr(function, '__name__'):
            raise TypeError(f'@seconds goes on a function, not on {function!r}')
        _registered.append(Task(function.__name__, function, period, timeout))
        return function
    return register


def tasks_of(registered):
    """The tasks, each named by its function's ``__name__``, or module-qualified
    (``myproduct.api.background.mail.send``) where two share a name."""
    shared = Counter(task.name for task in registered)
    tasks = [task if shared[task.name] == 1 else
             replace(task, name=f'{task.function.__module__}.{task.function.__qualname__}')
             for task in registered]
    twice = [name for name, count in Counter(task.name for task in tasks).items() if count > 1]
    if twice:
        raise ValueError(f'two tasks are named {twice[0]}')
    return tasks


class TaskTimeout(BaseException):
    """A run outlived its task's timeout. Not an Exception, so that a task's
    own ``except Exception`` does not swallow it (as with gevent.Timeout)."""


@dataclass(frozen=True)
class Run:
    """The run going on: its task, its slot (None for ``--run``) and when
    the slot began (a Unix time). A task that works on time windows can use
    ``[due - period, due)`` to cover time with no gap and no overlap."""
    task: str
    slot: int
    due: float


# Set by the scheduler (apiphant.background.scheduler.call) around each run.
_current = ContextVar('apiphant.background.run')


def current_run():
    """The Run of the task calling it, or None outside a run."""
    return _current.get(None)


def load(product):
    """``(package, module name, tasks, on_error)`` of a product's background
    module; a ProductError says what is missing or what failed to import."""
    package = locate(product)
    name = f'{package}.api.background'
    import_module(f'{package}.api')
    if importlib.util.find_spec(name) is None:
        raise ProductError(f'no module {name}: a product keeps its @seconds tasks in '
                           f'api/background.py or an api/background/ package')
    module = import_module(name)
    on_error = getattr(module, 'on_error', None)
    if on_error is not None and not callable(on_error):
        raise ProductError(f'{name}.on_error should be a function taking the error text')
    if not _registered:
        raise ProductError(f'{name} has no tasks: mark a function with @seconds(N) '
                           f'(from apiphant.background import seconds)')
    try:
        return package, name, tasks_of(_registered), on_error
    except ValueError as error:
        raise ProductError(f'{name}: {error}') from None
