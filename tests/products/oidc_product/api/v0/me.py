from apiphant import action, context
from apiphant.auth import ANYONE, role


def read(request):
    """Who calls: no access declared, so an authenticated caller."""
    auth = context.auth
    return {'id': auth.id, 'roles': sorted(auth.roles), 'kind': auth.kind, 'iss': auth.claims.get('iss'),
            'expires': auth.expires}


@action(access=role('admin'))
def purge(request):
    return {'purged': True}


@action(access=ANYONE)
def hello(request):
    return {'hello': 'world', 'authenticated': bool(context.auth)}
