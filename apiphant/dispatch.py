"""The hot path: a request in, one dict look-up, one JSON decode, one call,
one JSON encode, a response out.

``Application.respond()`` answers a request whose body has been read, for
apiphant's own HTTP front; ``Application`` is also a plain WSGI callable, for
any other server.
"""
import itertools
import logging
import os
import re

from apiphant.auth import access as _access, identity
from apiphant.codec import decode, encode
from apiphant.cors import Cors
from apiphant.current import RequestContext, current, enter, leave
from apiphant.errors import (NO_CONTENT, STATUS_LINES, ApiError, MethodNotAllowed, NotFound, PayloadTooLarge,
                             ServiceUnavailable, TooManyRequests, UnsupportedMediaType, status_line)
from apiphant.limits import RateLimits, shed
from apiphant.product import locate
from apiphant.routing import Route, discover, start as start_providers
from apiphant.stream import HEADERS as STREAM_HEADERS, Stream

__all__ = ['app', 'Application', 'DEFAULT_MAX_BODY_SIZE', 'HEALTH']

log = logging.getLogger('apiphant')

DEFAULT_MAX_BODY_SIZE = 1 << 20
_OK = '200 OK'
_EMPTY = b'{}'
_NO_HEADERS = ()
_CLOSE = ('Connection', 'close')
_INTERNAL = ApiError(500)
_ANONYMOUS = identity.ANONYMOUS
_CLIENT_ID = re.compile(r'[\w.:@/+=-]{1,128}', re.ASCII).fullmatch


def health(environ):
    """Readiness: answers once start-up is complete, for load balancers and
    reload scripts; 503 ``{"error": "503 Service Unavailable", "ok": false,
    "database": "unavailable"}`` while a database of the product does not
    answer (checked at most once a second)."""
    import sys
    storage = sys.modules.get('apiphant.crud.storage')  # a product without tables loads no SQLAlchemy
    if storage is not None and not storage.healthy():
        raise _NotReady('unavailable', retry_after=1)
    return {'ok': True}


class _NotReady(ServiceUnavailable):
    """/health's 503: an error's shape, with its 200's ``ok`` (false) and
    what is not ready, ``{"database": <error>}``."""

    def to_dict(self):
        return {'error': self.status_line, 'ok': False, 'database': self.error}


HEALTH = Route(path='/health', version='', target='', action='health', function=health,
               module=__name__, doc=health.__doc__, raw_environ=True, methods=('GET', 'POST'))


def app(product, *, max_body_size=DEFAULT_MAX_BODY_SIZE, start=True, rate_limit=None, max_in_flight=0,
        metrics=None, metrics_allow=(), require_json=True, docs=False, cors_origins=(), client_js=True):
    """The WSGI application serving ``product`` (a directory or a package name),
    with ``GET /health`` beside the product's routes, and ``GET /metrics`` when
    given ``metrics`` (an apiphant.metrics.Metrics), for ``metrics_allow``.
    ``start=False`` leaves the providers of actions unstarted (no database is
    touched), to list routes. ``rate_limit`` (a limits.Rate) and
    ``max_in_flight`` (0: no cap) hold for the product's actions;
    ``require_json=False`` lets a body without a JSON Content-Type in;
    ``docs=True`` adds ``GET /api/openapi.json`` and ``GET /docs``;
    ``cors_origins`` (a tuple of apiphant.cors.origins()) turns CORS on;
    ``client_js`` serves ``GET /api/client.js``."""
    package = locate(product)
    routes = discover(package)
    sources = identity.sources(package)
    routes = _access.settle(routes, package, sources)
    if start:
        start_providers(routes, sources)
        if sources:
            log.info('%s: access checked by %s', package, ', '.join(type(s).__name__ for s in sources))
        else:
            log.warning('%s declares no identity source (apiphant.auth): every action is open to anyone', package)
    routes[HEALTH.path] = HEALTH
    if metrics is not None:
        from apiphant.metrics import route as metrics_route
        metrics_route = metrics_route(metrics, metrics_allow)
        routes[metrics_route.path] = metrics_route
    if client_js:
        from apiphant.jsclient import route as client_route
        client_route = client_route()
        if client_route is not None:
            routes[client_route.path] = client_route
    application = Application(routes, max_body_size=max_body_size, rate_limits=RateLimits(rate_limit),
                              max_in_flight=max_in_flight, metrics=metrics, require_json=require_json,
                              cors=Cors(cors_origins) if cors_origins else None,
                              gate=_access.Gate(sources) if sources else None)
    if docs:  # last: the document describes every route
        from apiphant.docs import install
        install(application, package)
    return application


class Application:
    def __init__(self, routes, *, max_body_size=DEFAULT_MAX_BODY_SIZE, rate_limits=None, max_in_flight=0,
                 metrics=None, require_json=True, cors=None, gate=None):
        self.routes = routes
        self.max_body_size = max_body_size
        self.new_request_id = request_ids()
        self.rate_limits = rate_limits if rate_limits is not None and (
            rate_limits.default or any(route.rate_limit for route in routes.values())) else None
        self.max_in_flight = max_in_flight or float('inf')
        self.in_flight = 0
        self.metrics = metrics
        self.require_json = require_json
        self.cors = cors  # an apiphant.cors.Cors, or None: off
        self.gate = gate  # an apiphant.auth.access.Gate, or None: no identity source, every action open

    def request_id(self, given):
        """The client's X-Request-Id when it is sane, a new one otherwise."""
        return given if given and _CLIENT_ID(given) else self.new_request_id()

    def respond(self, route, method, body, content_type, context, authorization=None):
        """``(status line, extra headers, body)`` for a request to ``route``
        (None: no such route) whose body has been read, with its Content-Type
        and Authorization (bytes, or None). ``context`` holds the first seven
        arguments of its RequestContext, made if an action looks."""
        token = enter(context)
        self.in_flight += 1  # this one too, so past the cap is more than max_in_flight
        try:
            if route is None or method not in route.methods:
                if method == 'OPTIONS' and self.cors is not None:
                    preflight = self.cors.preflight(route, current().headers)
                    if preflight is not None:
                        return preflight
                if route is None:
                    raise NotFound()
                raise MethodNotAllowed(route.methods)
            # The product's actions are held back past the cap or a rate; /health and /metrics never.
            if route.version and (self.in_flight > self.max_in_flight or self.rate_limits is not None):
                self.hold_back(route, context[2])
            if self.gate is not None and route.version:
                auth = self.gate.check(route.access, authorization)
                if auth is not _ANONYMOUS:
                    enter(context + (auth,))  # leave(token) still restores what was before
            if content_type != _APPLICATION_JSON and self.require_json and not route.raw_environ \
                    and (body or content_type is not None) and not json_media_type(content_type):
                raise UnsupportedMediaType(NOT_JSON)
            request = current().environ if route.raw_environ else decode(body)
            if route.raw_response:
                return _collect(route.function, request)
            response = route.function(request)
            if response is None:
                return _OK, _NO_HEADERS, _EMPTY
            if isinstance(response, dict):
                return _OK, _NO_HEADERS, encode(response)
            if type(response) is Stream:  # the front sends the head, then hands it the connection
                return _OK, STREAM_HEADERS, response
            raise TypeError(f'{route.module}.{route.function.__name__} returned '
                            f'{type(response).__name__}, an action should return a dict or None')
        except ApiError as error:
            return self.error(error, context)
        except BaseException:  # SystemExit, a gevent.Timeout, GreenletExit too: the process serves on
            return self.crash(context)
        finally:
            self.in_flight -= 1
            leave(token)

    def hold_back(self, route, client):
        """Shed (503) when the process has too many requests in flight, and
        429 when ``client`` is past its rate: both before any work."""
        if self.in_flight > self.max_in_flight:
            if self.metrics is not None:
                self.metrics.shed()
            raise shed()
        if self.rate_limits is not None:
            try:
                self.rate_limits.check(route, client)
            except TooManyRequests:
                if self.metrics is not None:
                    self.metrics.limited()
                raise

    def error(self, error, context):
        try:
            return error.status_line, _checked(error.headers), error.body()
        except (TypeError, ValueError):
            return self.crash(context)

    @staticmethod
    def crash(context):
        request_id, route = context[:2]
        log.exception('%s failed, request id %s', route.path if route else 'request', request_id)
        return _INTERNAL.status_line, _NO_HEADERS, _INTERNAL.body()

    def __call__(self, environ, start_response):
        """WSGI."""
        request_id = self.request_id(environ.get('HTTP_X_REQUEST_ID'))
        environ['apiphant.request_id'] = request_id
        origin = environ.get('HTTP_ORIGIN') if self.cors is not None else None
        if origin is not None:
            start_response = _adding(start_response, self.cors.headers(origin))
        route = self.routes.get(_path(environ))
        method = environ['REQUEST_METHOD']
        context = (request_id, route, environ.get('REMOTE_ADDR'), None, environ, None, None)
        authorization = environ.get('HTTP_AUTHORIZATION')
        headers = [('Content-Type', 'application/json'), ('X-Request-Id', request_id)]
        body = b''
        if route is not None and method in route.methods:
            if route.raw_response:  # its own answer, streamed as it likes
                token = enter(RequestContext(*context))
                try:
                    if self.gate is not None and route.version:
                        current().auth = self.gate.check(route.access, authorization)
                    return route.function(environ if route.raw_environ else decode(self._read_body(environ)),
                                          start_response)
                except ApiError as error:
                    status, extra, body = self.error(error, context)
                except Exception:
                    status, extra, body = self.crash(context)
                finally:
                    leave(token)
                return self._finish(start_response, headers, status, extra, body)
            if not route.raw_environ:
                try:
                    body = self._read_body(environ)
                except ApiError as error:
                    headers.append(_CLOSE)  # the body is left unread
                    return self._finish(start_response, headers, *self.error(error, context))
        content_type = environ.get('CONTENT_TYPE')
        return self._finish(start_response, headers, *self.respond(
            route, method, body, content_type.encode('latin-1') if content_type else None, context, authorization))

    @staticmethod
    def _finish(start_response, headers, status, extra, body):
        if type(body) is Stream:  # its events need apiphant's own front, which holds no greenlet per stream
            body.end(cut=True)
            unserved = ApiError(501, _STREAMS_NEED_FRONT)
            status, extra, body = unserved.status_line, unserved.headers, unserved.body()
        headers.extend(extra)
        if status in NO_CONTENT:  # neither a type nor a length (a raw 204 or 304 comes with its own line)
            headers = [header for header in headers if header[0] != 'Content-Type']
        else:
            headers.append(('Content-Length', str(len(body))))
        start_response(status, headers)
        return [body]

    def _read_body(self, environ):
        length = environ.get('CONTENT_LENGTH')
        if length:
            try:
                length = int(length)
            except ValueError:
                raise ApiError(400, 'Invalid Content-Length') from None
            if length > self.max_body_size:
                raise PayloadTooLarge()
            return environ['wsgi.input'].read(length) if length > 0 else b''
        if 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', '').lower():
            body = environ['wsgi.input'].read(self.max_body_size + 1)
            if len(body) > self.max_body_size:
                raise PayloadTooLarge()
            return body
        return b''


NOT_JSON = 'Request content should be JSON: send Content-Type: application/json'
_STREAMS_NEED_FRONT = 'an event stream is served by apiphant\'s own server (python -m apiphant), not through WSGI'
_APPLICATION_JSON = b'application/json'
_JSON_TYPES = {}  # Content-Type as sent: whether it is JSON


def json_media_type(content_type):
    """Whether a Content-Type (bytes) is JSON in UTF-8: ``application/json``
    or ``application/<anything>+json``, with no charset but UTF-8. A form or
    ``text/plain``, which browsers send across sites without asking first,
    is not."""
    if content_type is None:
        return False
    known = _JSON_TYPES.get(content_type)
    if known is None:
        media, *parameters = content_type.decode('latin-1').lower().split(';')
        kind, _, subtype = media.strip().partition('/')
        known = kind == 'application' and (subtype == 'json' or subtype.endswith('+json')) and all(
            value.strip().strip('"') in ('utf-8', 'utf8') for name, _, value in
            (parameter.partition('=') for parameter in parameters) if name.strip() == 'charset')
        if len(_JSON_TYPES) < 1000:
            _JSON_TYPES[content_type] = known
    return known


def request_ids():
    """A function making a new request id at each call: this process's 8
    random hex digits, then a counter (``3f9a01c2-1``, ``3f9a01c2-2`` ...)."""
    prefix = os.urandom(4).hex() + '-'
    counter = itertools.count(1)

    def new_request_id():
        return f'{prefix}{next(counter):x}'
    return new_request_id


def _path(environ):
    """The path as it came on the wire when the server says (``%2F`` and ``%2e``
    stay encoded, so they match no route), else the decoded PATH_INFO."""
    raw = environ.get('RAW_URI') or environ.get('REQUEST_URI')
    if raw is None:
        return environ.get('PATH_INFO')
    return raw.partition('?')[0]


def _adding(start_response, headers):
    """A start_response that adds ``headers`` to the answer's."""
    def adding(status, response_headers, exc_info=None):
        return start_response(status, [*response_headers, *headers], exc_info)
    return adding


def _collect(function, request):
    """Run a ``@raw_response`` action and gather its answer in memory."""
    answer = []

    def start_response(status, headers, exc_info=None):
        answer[:] = status, headers
        return chunks.append

    chunks = []
    result = function(request, start_response)
    try:
        chunks.extend(result)
    finally:
        getattr(result, 'close', lambda: None)()
    if not answer:
        raise TypeError(f'{function.__qualname__} did not call start_response')
    status, headers = answer
    code = int(status[:3])
    status_line(code)  # a ValueError for a status line that is not one
    if '\r' in status or '\n' in status:
        raise ValueError(f'a line break in the status {status!r}')
    body = b''.join(chunks)
    if STATUS_LINES.get(code) in NO_CONTENT:  # sent without a length, a body would be read as the next answer
        if body:
            raise ValueError(f'{function.__qualname__} wrote {len(body)} bytes after a {code}, which has no content')
        status = STATUS_LINES[code]  # its own line, as the front and _finish know it
    return status, _checked([(n, v) for n, v in headers if n.lower() != 'content-length']), body


def _checked(headers):
    """Response headers as (str, str) pairs with no line break (no header injection)."""
    for name, value in headers:
        if not (isinstance(name, str) and isinstance(value, str)) or '\r' in name or '\n' in name \
                or '\r' in value or '\n' in value:
            raise ValueError(f'not a valid response header: {name!r}: {value!r}')
    return headers

