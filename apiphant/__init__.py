"""apiphant: a product's module tree served as a JSON API on gevent.

The modules, in the order a request meets them::

    cli         the command line: decides the mode once (routes, worker,
                parent of workers, alone), reading settings
    server      the server process: listens, says when ready, drains on
                SIGTERM (workers: several processes on one port, under a
                parent); 0.2's name, so that 0.2's imports from it still work
    front       the HTTP front, the part facing the network: bytes on a
                socket become HTTP/1.1 messages (llhttp), with limits and
                deadlines; answers go back
    routing     the route table the front looks a path up in, built once at
                start-up from the product's modules (product finds and
                imports them)
    dispatch    sends a message to its action: the hot path, from a Route to
                an answer or an error; also a plain WSGI application
    current     the *current* request: what it carries besides its JSON
                (``apiphant.context``), set by dispatch around the call
    limits      who asks (the client behind trusted proxies) and how much:
                rate limits, the cap of requests in flight
    auth        who calls and what they may do: its gate, run in dispatch,
                checks the bearer token against the action's access
    codec       the body's strict JSON decode into a request.Request (a dict
                read by attribute), and the answer's encode
    validation  field() and @strict in an action: a value, or a 400
    crud        generated tables (a provider of actions, started with the
                server)
    stream      an answer that goes on (server-sent events): the front hands
                it the socket
    errors      the one error hierarchy: every error renders its own answer

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
