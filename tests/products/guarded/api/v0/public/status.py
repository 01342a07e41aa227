from apiphant import action, context
from apiphant.auth import AUTHENTICATED


def read(request):
    """Open (the package's ACCESS), and says who calls when a token came."""
    return {'ok': True, 'caller': context.auth.id}


@action(access=AUTHENTICATED)
def private(request):
    return {'caller': context.auth.id}
