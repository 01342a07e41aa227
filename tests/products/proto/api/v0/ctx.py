import gevent

from apiphant import context


def read(request):
    """The request's context, seen from the action, after a yield to other greenlets."""
    before = context.request_id
    gevent.sleep(request.get('sleep', 0))
    return {'request_id': context.request_id, 'same': before == context.request_id,
            'client': context.client, 'custom': context.headers.get('X-Custom'),
            'marker': request.get('marker')}
