"""``GET /api/client.js``: apiphant's JavaScript client (``apiphant/client.js``),
an ES module a browser page or Node imports from the daemon itself. Read
once at start-up; public code, the same for every caller."""
import importlib.resources
import logging

from apiphant.routing import Route

__all__ = ['route', 'PATH', 'CONTENT_TYPE']

log = logging.getLogger('apiphant')

PATH = '/api/client.js'
CONTENT_TYPE = 'text/javascript; charset=utf-8'


def source():
    """The module's text, as bytes."""
    return importlib.resources.files('apiphant').joinpath('client.js').read_bytes()


def route():
    """The Route of ``GET /api/client.js``; None (logged) when this installation
    of apiphant lacks the file."""
    try:
        body = source()
    except FileNotFoundError:
        log.error('apiphant/client.js is missing from this installation: %s is not served', PATH)
        return None
    headers = [('Content-Type', CONTENT_TYPE)]

    def client_js(request, start_response):
        """apiphant's JavaScript client, an ES module: import {Client} from '/api/client.js'."""
        start_response('200 OK', headers)
        return [body]

    return Route(path=PATH, version='', target='', action='client_js', function=client_js, module=__name__,
                 doc=client_js.__doc__, raw_response=True, methods=('GET',))
