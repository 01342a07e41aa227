"""What a request carries besides its JSON: ``apiphant.context``.

Actions take only ``request``; headers, the client address, the request id
and the caller (``context.auth``) are read from ``apiphant.context`` while the
action runs. The server sets it
before the action and clears it after. It lives in a ContextVar, which gevent
keeps per greenlet (and threads per thread), so concurrent requests never see
each other's context.
"""
from contextvars import ContextVar

from apiphant.auth.identity import ANONYMOUS

__all__ = ['context', 'current', 'RequestContext', 'Headers']


class Headers(dict):
    """Request headers by lower-case name, read case-insensitively:
    ``context.headers['X-Request-Id']``, ``context.headers.get('user-agent')``."""

    __slots__ = ()

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())

    @classmethod
    def from_raw(cls, pairs):
        """From the parser's (name, value) byte pairs; repeated headers joined."""
        headers = cls()
        for name, value in pairs:
            name = name.decode('latin-1').lower()
            value = value.decode('latin-1')
            if name in headers:
                value = dict.__getitem__(headers, name) + ('; ' if name == 'cookie' else ', ') + value
            dict.__setitem__(headers, name, value)
        return headers

    @classmethod
    def from_environ(cls, environ):
        headers = cls()
        for key, value in environ.items():
            if key.startswith('HTTP_'):
                headers[key[5:].replace('_', '-').lower()] = value
            elif key in ('CONTENT_TYPE', 'CONTENT_LENGTH') and value:
                headers[key.replace('_', '-').lower()] = value
        return headers


class RequestContext:
    """The context of one request. The WSGI environ and the headers are made
    on first use, when the server did not need them itself: from
    ``make_environ()`` and from the parser's ``raw_headers``."""

    __slots__ = ('request_id', 'route', 'client', '_headers', '_environ', 'make_environ', 'raw_headers', 'auth')

    def __init__(self, request_id, route, client, headers=None, environ=None, make_environ=None,
                 raw_headers=None, auth=ANONYMOUS):
        self.request_id = request_id
        self.route = route
        self.client = client
        self._headers = headers
        self._environ = environ
        self.make_environ = make_environ
        self.raw_headers = raw_headers
        self.auth = auth  # an apiphant.auth.Auth: who calls (ANONYMOUS: nobody said)

    @property
    def environ(self):
        if self._environ is None and self.make_environ is not None:
            self._environ = self.make_environ()
        return self._environ

    @property
    def headers(self):
        if self._headers is None:
            if self.raw_headers is not None:
                self._headers = Headers.from_raw(self.raw_headers)
            else:
                self._headers = Headers.from_environ(self.environ or {})
        return self._headers


_current = ContextVar('apiphant.context')
_EMPTY = RequestContext(None, None, None, Headers(), None)


def current():
    """The RequestContext of the running request (the empty one outside).
    The server enters a plain tuple of RequestContext's arguments, which
    costs less; it becomes a RequestContext when something looks."""
    value = _current.get(_EMPTY)
    if type(value) is tuple:
        value = RequestContext(*value)
        _current.set(value)
    return value


class _ContextProxy:
    """Reads the current request's context; outside a request it is empty:
    ``context.request_id`` is None and ``bool(context)`` is False."""

    __slots__ = ()

    def __getattr__(self, name):
        return getattr(current(), name)

    def __bool__(self):
        return current() is not _EMPTY

    def __repr__(self):
        value = current()
        return 'context(none)' if value is _EMPTY else f'context(request_id={value.request_id!r})'


context = _ContextProxy()
enter = _current.set
leave = _current.reset
