"""CORS: which browser pages on other origins may call the API.

Off unless ``--cors-origins`` names origins. Rules:

1. An origin is allowed by exact match of the ``Origin`` header with one of
   the list (``scheme://host[:port]``, as browsers write it). There is no
   ``*`` and no pattern, and no ``Access-Control-Allow-Credentials``: cookies
   never cross; a client sends its token in ``Authorization``.
2. An answer to a request whose ``Origin`` is allowed says
   ``Access-Control-Allow-Origin: <that origin>``, ``Vary: Origin`` and
   exposes ``X-Request-Id`` and ``Retry-After`` to the page. An answer to an
   origin not allowed says ``Vary: Origin`` alone: the browser keeps the
   answer from the page. A request without ``Origin`` gets nothing added.
3. A preflight (``OPTIONS`` with ``Origin`` and
   ``Access-Control-Request-Method``) from an allowed origin is ``204`` on
   any path, with the methods of the path (``POST`` on an action; a path
   with no route answers 404 to the real request, which the page can then
   read), the headers a client sends (``Content-Type``, ``Authorization``,
   ``X-Request-Id``, and ``Last-Event-ID``, which a watch that comes back
   sends) and ``Access-Control-Max-Age``. From an origin not
   allowed it is ``403 {"error": ...}``.
4. Per request, one dict look-up of the ``Origin`` header; nothing at all
   when CORS is off or the request has no ``Origin``.
"""
from urllib.parse import urlsplit

from apiphant.errors import Forbidden

__all__ = ['Cors', 'origins', 'MAX_AGE', 'ALLOW_HEADERS', 'EXPOSE_HEADERS']

MAX_AGE = 600  # seconds a browser keeps a preflight's answer (Chromium keeps at most 7200)
ALLOW_HEADERS = 'Content-Type, Authorization, X-Request-Id, Last-Event-ID'
EXPOSE_HEADERS = 'X-Request-Id, Retry-After'
NO_CONTENT = '204 No Content'
_VARY = ('Vary', 'Origin')
_NOT_ALLOWED = (_VARY,)
_NOT_ALLOWED_LINES = b'Vary: Origin\r\n'
_DEFAULT_PORTS = {'http': 80, 'https': 443}


def origins(text):
    """The origins of a comma-separated list, as browsers write them; a
    ValueError naming the first that is not ``scheme://host[:port]``."""
    found = []
    for part in str(text).replace(' ', ',').split(','):
        if part:
            found.append(_origin(part))
    return tuple(dict.fromkeys(found))


def _origin(text):
    how = 'an origin is scheme://host[:port], e.g. https://app.example.com or http://localhost:5173'
    if text in ('*', 'null'):
        raise ValueError(f'{text!r} is not allowed as an origin: name each origin ({how})')
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f'{text!r} is not an origin: {how}') from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username is not None or text.endswith(':'):
        raise ValueError(f'{text!r} is not an origin: {how}')
    scheme, host = parts.scheme.lower(), parts.hostname
    if ':' in host:
        host = f'[{host}]'
    return f'{scheme}://{host}' if port in (None, _DEFAULT_PORTS[scheme]) else f'{scheme}://{host}:{port}'


class Cors:
    """The CORS answers for ``allowed`` origins (see ``origins()``)."""

    def __init__(self, allowed, max_age=MAX_AGE):
        self.allowed = tuple(allowed)
        self.max_age = max_age
        # The headers to add, by Origin as sent: str for WSGI, bytes for the front;
        # and as the lines of a response head, for the front's one-format answer.
        self._answers = {}
        self._lines = {}
        for origin in self.allowed:
            headers = (('Access-Control-Allow-Origin', origin), _VARY,
                       ('Access-Control-Expose-Headers', EXPOSE_HEADERS))
            self._answers[origin] = self._answers[origin.encode('latin-1')] = headers
            self._lines[origin.encode('latin-1')] = b''.join(b'%s: %s\r\n' % (name.encode(), value.encode())
                                                             for name, value in headers)
        self._preflights = {}  # by a route's methods

    def __bool__(self):
        return bool(self.allowed)

    def headers(self, origin):
        """The headers an answer to a request from ``origin`` (str or bytes) adds."""
        return self._answers.get(origin, _NOT_ALLOWED)

    def lines(self, origin):
        """Those headers as the lines of a response head, for ``origin`` as bytes."""
        return self._lines.get(origin, _NOT_ALLOWED_LINES)

    def add(self, extra, origin):
        """``extra``, the headers of an answer, with those for ``origin``."""
        headers = self._answers.get(origin, _NOT_ALLOWED)
        return (*extra, *headers) if extra else headers

    def preflight(self, route, headers):
        """``(status line, extra headers, body)`` answering an ``OPTIONS``
        to ``route`` (None: no such path) that carries ``headers`` (a
        current.Headers), or None when it is no preflight (no ``Origin`` or
        no ``Access-Control-Request-Method``). The headers of ``headers()``
        are added by the server, as to any answer."""
        origin = headers.get('origin')
        if origin is None or headers.get('access-control-request-method') is None:
            return None
        if origin not in self._answers:
            raise Forbidden(f'the origin {origin} may not call this API (see --cors-origins)')
        methods = route.methods if route is not None else ('POST',)
        extra = self._preflights.get(methods)
        if extra is None:
            extra = self._preflights[methods] = (
                ('Access-Control-Allow-Methods', ', '.join(methods)),
                ('Access-Control-Allow-Headers', ALLOW_HEADERS),
                ('Access-Control-Max-Age', str(self.max_age)))
        return NO_CONTENT, extra, b''
