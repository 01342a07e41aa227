"""The hot path: a request in, one dict look-up, one JSON decode, one call,
one JSON encode, a response out. ``Application`` is a plain WSGI callable."""
import itertools
import logging
import os
import re

from apiphant.codec import decode, encode
from apiphant.current import RequestContext, enter, leave
from apiphant.errors import ApiError, MethodNotAllowed, NotFound, PayloadTooLarge, status_line
from apiphant.product import locate
from apiphant.routing import Route, discover

__all__ = ['app', 'Application', 'DEFAULT_MAX_BODY_SIZE']

log = logging.getLogger('apiphant')

DEFAULT_MAX_BODY_SIZE = 1 << 20
_JSON = ('Content-Type', 'application/json')
_CLOSE = ('Connection', 'close')
_OK = '200 OK'
_EMPTY = b'{}'
_INTERNAL_LINE = status_line(500)
_INTERNAL_BODY = encode({'error': _INTERNAL_LINE})
_CLIENT_ID = re.compile(r'[\w.:@/+=-]{1,128}', re.ASCII).fullmatch


def _path(environ):
    """The path as it came on the wire when the server says (``%2F`` and ``%2e``
    stay encoded, so they match no route), else the decoded PATH_INFO."""
    raw = environ.get('RAW_URI') or environ.get('REQUEST_URI')
    if raw is None:
        return environ.get('PATH_INFO')
    return raw.partition('?')[0]


def health(environ):
    """Readiness: answers once start-up is complete, for load balancers and reload scripts."""
    return {'ok': True}


HEALTH = Route(path='/health', version='', target='', action='health', function=health,
               module=__name__, doc=health.__doc__, raw_environ=True, methods=('GET', 'POST'))


def app(product, *, max_body_size=DEFAULT_MAX_BODY_SIZE):
    """The WSGI application serving ``product`` (a directory or a package name),
    with ``GET /health`` beside the product's routes."""
    return Application({**discover(locate(product)), HEALTH.path: HEALTH}, max_body_size=max_body_size)


class Application:
    def __init__(self, routes, *, max_body_size=DEFAULT_MAX_BODY_SIZE):
        self.routes = routes
        self.max_body_size = max_body_size
        self._request_ids = map('{}{:x}'.format, itertools.repeat(os.urandom(4).hex() + '-'),
                                itertools.count(1)).__next__

    def __call__(self, environ, start_response):
        client_id = environ.get('HTTP_X_REQUEST_ID')
        request_id = client_id if client_id and _CLIENT_ID(client_id) else self._request_ids()
        environ['apiphant.request_id'] = request_id
        headers = [_JSON, ('X-Request-Id', request_id)]
        route = self.routes.get(_path(environ))
        token = enter(RequestContext(environ, request_id, route))
        try:
            if route is None:
                raise NotFound()
            if environ['REQUEST_METHOD'] not in route.methods:
                raise MethodNotAllowed(route.methods)
            if route.raw_environ:
                request = environ
            else:
                request = decode(self._read_body(environ, headers))
            if route.raw_response:
                return route.function(request, start_response)
            response = route.function(request)
            if response is None:
                body = _EMPTY
            elif isinstance(response, dict):
                body = encode(response)
            else:
                raise TypeError(f'{route.module}.{route.function.__name__} returned '
                                f'{type(response).__name__}, an action should return a dict or None')
            status = _OK
        except ApiError as error:
            status, body = self._error(error, headers, environ)
        except Exception:
            status, body = self._crash(environ)
        finally:
            leave(token)
        headers.append(('Content-Length', str(len(body))))
        start_response(status, headers)
        return [body]

    def _read_body(self, environ, headers):
        length = environ.get('CONTENT_LENGTH')
        if length:
            try:
                length = int(length)
            except ValueError:
                raise ApiError(400, 'Invalid Content-Length') from None
            if length > self.max_body_size:
                headers.append(_CLOSE)  # the body is left unread
                raise PayloadTooLarge()
            return environ['wsgi.input'].read(length) if length > 0 else b''
        if 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', '').lower():
            body = environ['wsgi.input'].read(self.max_body_size + 1)
            if len(body) > self.max_body_size:
                headers.append(_CLOSE)
                raise PayloadTooLarge()
            return body
        return b''

    def _error(self, error, headers, environ):
        try:
            body = encode(error.to_dict())
        except TypeError:
            return self._crash(environ)
        headers.extend(error.headers)
        return error.status_line, body

    @staticmethod
    def _crash(environ):
        log.exception('%s %s failed, request id %s', environ.get('REQUEST_METHOD'),
                      environ.get('PATH_INFO'), environ.get('apiphant.request_id'))
        return _INTERNAL_LINE, _INTERNAL_BODY
