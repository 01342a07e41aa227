"""apiphant: a product's module tree served as a JSON API on gevent.

The modules, in the order a request meets them::

    cli       the command line: decides the mode once (routes, worker,
              parent of workers, alone), reading settings
    server    serves one process: listens, says when ready, drains on SIGTERM
              (workers: several processes on one port, under a parent)
    front     the front facing clients: bytes on a socket become HTTP/1.1
              messages (llhttp), with limits and deadlines; answers go back
    limits    who asks (the client behind trusted proxies) and how much:
              rate limits, the cap of requests in flight
    dispatch  the hot path: a message's path to its Route, the body through
              codec and request, one call of the action, its answer or error;
              also a plain WSGI application
    current   what the *current* request carries besides its JSON
              (``apiphant.context``), set by dispatch around the action
    routing   the route table, built once at start-up from the product's
              modules (product finds and imports them)
    errors    the one error hierarchy; validation's field() raises its 400s
    crud      generated tables (a provider of actions, started with the server)

and beside the daemon: background (the scheduler of @seconds tasks, its own
process), client (the Python client), openapi and docs (the API described,
``/docs``), cors, metrics (``GET /metrics``), logs, settings, scaffold (``apiphant
new``, ``apiphant upgrade``), test and pytest_plugin (functional tests
against a real server).

The names below are imported on first use, so that ``python -m apiphant`` and
the entry scripts can patch gevent before anything else is imported.
"""
from apiphant.lazy import lazy

__version__ = '1.0.0.dev0'

_EXPORTS = {
    'app': 'apiphant.dispatch',
    'Application': 'apiphant.dispatch',
    'action': 'apiphant.routing',
    'raw_environ': 'apiphant.routing',
    'raw_response': 'apiphant.routing',
    'context': 'apiphant.current',
    'ApiError': 'apiphant.errors',
    'Request': 'apiphant.request',
    'strict': 'apiphant.validation',
}

__all__ = [*_EXPORTS, '__version__']

__getattr__, __dir__ = lazy(__name__, _EXPORTS, __all__)
