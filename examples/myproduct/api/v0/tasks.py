"""Tasks, kept in memory: an example of validation."""
import itertools

from apiphant.validation import NotFound, field

_tasks = {}
_ids = itertools.count(1)


def create(request):
    """Create a task: {"title", "priority"?, "estimate"?, "due"?} → the task."""
    title = field(request, 'title', is_required=True, valid_type=str, min_length=1, max_length=200)
    priority = field(request, 'priority', default_value='normal', valid_values=('low', 'normal', 'high'))
    estimate = field(request, 'estimate', default_value=1, valid_type=int, min_value=1, max_value=100)
    due = field(request, 'due', valid_type=str, pattern=r'\d{4}-\d{2}-\d{2}', explain='YYYY-MM-DD')
    task = {'id': next(_ids), 'title': title, 'priority': priority, 'estimate': estimate, 'due': due}
    _tasks[task['id']] = task
    return task


def read(request):
    """Read a task by id."""
    task_id = field(request, 'id', is_required=True, valid_type=int)
    task = _tasks.get(task_id)
    if task is None:
        raise NotFound()
    return task
