from apiphant import action, context
from apiphant.auth import ANYONE, role


@action(access=ANYONE)
def ping(request):
    """Open to anyone: what the load of logins must not hold up."""
    return {'pong': request.get('n')}


def read(request):
    """No access declared: an authenticated caller (secure by default)."""
    auth = context.auth
    return {'id': auth.id, 'roles': sorted(auth.roles), 'kind': auth.kind}


@action(access=role('admin'))
def purge(request):
    return {'purged': True}
