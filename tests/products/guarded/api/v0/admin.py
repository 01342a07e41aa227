from apiphant import action
from apiphant.auth import role


@action(access=role('admin'))
def purge(request):
    return {'purged': True}


@action(access=role('editor', 'admin'))
def publish(request):
    return {'published': True}
