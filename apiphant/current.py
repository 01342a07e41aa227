"""What a request carries besides its JSON: ``apiphant.context``.

Actions take only ``request``; headers, the client address and the request id
are read from ``apiphant.context`` while the action runs. The server sets it
before the action and clears it after. It lives in a ContextVar, which gevent
keeps per greenlet (and threads per thread), so concurrent requests never see
each other's context.
"""
from collections.abc import Mapping
from contextvars import ContextVar

__all__ = ['context', 'RequestContext', 'Headers']


class Headers(Mapping):
    """Request headers read from the WSGI environ, case-insensitively:
    ``context.headers['X-Request-Id']``."""

    __slots__ = ('_environ',)

    def __init__(self, environ):
        self._environ = environ

    @staticmethod
    def _key(name):
        key = name.upper().replace('-', '_')
        return key if key in ('CONTENT_TYPE', 'CONTENT_LENGTH') else 'HTTP_' + key

    def __getitem__(self, name):
        value = self._environ.get(self._key(name))
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        for key in self._environ:
            if key.startswith('HTTP_'):
                yield key[5:].replace('_', '-').title()
            elif key in ('CONTENT_TYPE', 'CONTENT_LENGTH') and self._environ[key]:
                yield key.replace('_', '-').title()

    def __len__(self):
        return sum(1 for _ in self)

    def __repr__(self):
        return f'Headers({dict(self)!r})'


class RequestContext:
    """The context of one request."""

    __slots__ = ('environ', 'request_id', 'route')

    def __init__(self, environ, request_id, route):
        self.environ = environ
        self.request_id = request_id
        self.route = route

    @property
    def headers(self):
        return Headers(self.environ)

    @property
    def client(self):
        """The client's address, as the server saw it."""
        return self.environ.get('REMOTE_ADDR')


_current = ContextVar('apiphant.context')


class _ContextProxy:
    """Reads the current request's context; outside a request it is empty:
    ``context.request_id`` is None and ``bool(context)`` is False."""

    __slots__ = ()

    def __getattr__(self, name):
        current = _current.get(None)
        if current is None:
            if name in RequestContext.__slots__ or name in ('client',):
                return None
            if name == 'headers':
                return Headers({})
            raise AttributeError(name)
        return getattr(current, name)

    def __bool__(self):
        return _current.get(None) is not None

    def __repr__(self):
        current = _current.get(None)
        return 'context(none)' if current is None else f'context(request_id={current.request_id!r})'


context = _ContextProxy()
enter = _current.set
leave = _current.reset
