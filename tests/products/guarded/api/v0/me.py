from apiphant import action, context, raw_environ


def read(request):
    """Who calls: no access declared, so an authenticated caller (secure by default)."""
    auth = context.auth
    return {'id': auth.id, 'roles': sorted(auth.roles), 'kind': auth.kind}


@raw_environ
def upload(environ):
    """A raw action guarded as any other."""
    return {'id': context.auth.id}


@action
def hello(request):
    return {'hello': request.get('name', 'world')}
