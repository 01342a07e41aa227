"""The one error hierarchy. Every error a client sees is an ApiError, and an
ApiError renders its own status line, headers and JSON body, so the hot path
has one ``except ApiError`` and nothing else knows the shape: the HTTP front's
own rejections (413, 431, 505 ...) are ApiErrors too.
"""
import functools
from http import HTTPStatus

import orjson

from apiphant.request import Request

__all__ = [
    'ApiError', 'BadRequest', 'Missing', 'Invalid', 'Unauthorized', 'Forbidden',
    'NotFound', 'MethodNotAllowed', 'Conflict', 'PayloadTooLarge', 'UnsupportedMediaType',
    'UnprocessableEntity', 'TooManyRequests', 'ServiceUnavailable', 'status_line', 'status_body',
]

# RFC 9110 names, pinned so the wire does not change with the Python release.
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_PHRASES.update({413: 'Content Too Large', 414: 'URI Too Long',
                 416: 'Range Not Satisfiable', 422: 'Unprocessable Content'})
# Left out of __all__, which lists the API a product uses (each class is in the
# README's errors table and in client.js, and tests hold them to it): the front
# imports these by name.
STATUS_LINES = {code: f'{code} {phrase}' for code, phrase in _PHRASES.items()}
# RFC 9110 6.4.1: the answers that have no content, so neither a type nor a length.
NO_CONTENT = frozenset({STATUS_LINES[204], STATUS_LINES[304]})


def status_line(status):
    """'404 Not Found' for 404; a code without a registered name still works."""
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError(f'HTTP status should be an int from 100 to 599, not {status!r}')
    return STATUS_LINES.get(status) or f'{int(status)} Unknown'


@functools.cache
def status_body(status):
    """``{"error": "404 Not Found"}`` as bytes, made once per status."""
    return orjson.dumps({'error': status_line(status)})


class ApiError(Exception):
    """``raise ApiError(status, error=None)`` answers ``status`` with
    ``{"error": error}``, or with the status line when ``error`` is None."""

    headers = ()

    def __init__(self, status, error=None):
        self.status_line = status_line(status)  # rejects a bad status where it is raised
        self.status = status
        self.error = error
        super().__init__(status, error)

    @property
    def status_code(self):  # the 0.2 name
        return self.status

    def to_dict(self):
        return {'error': self.status_line if self.error is None else self.error}

    def body(self):
        """The JSON body; TypeError when ``error`` cannot be encoded."""
        if self.error is None:
            return status_body(self.status)
        from apiphant.codec import encode  # codec raises ApiErrors: it imports this module
        return encode(self.to_dict())


class BadRequest(ApiError):
    """400 ``{"error": {"field": ..., "state": ..., "explain": ...}}``; an
    explain of None or '' is left out, any other (0, -1, a dict) is shown."""

    state = None

    def __init__(self, field, state=None, explain=None):
        error = Request(field=field, state=state or self.state)
        if explain is not None and explain != '':
            error['explain'] = explain
        super().__init__(400, error)
        self.field = field
        self.explain = explain


class Missing(BadRequest):
    state = 'missing'

    def __init__(self, field, explain=None):
        super().__init__(field, self.state, explain)


class Invalid(BadRequest):
    state = 'invalid'

    def __init__(self, field, explain=None):
        super().__init__(field, self.state, explain)


class _StatusError(ApiError):
    """A named status: ``raise NotFound()`` or ``raise NotFound('no such task')``."""

    status = 500

    def __init__(self, error=None):
        super().__init__(type(self).status, error)


class Unauthorized(_StatusError): status = 401
class Forbidden(_StatusError): status = 403
class NotFound(_StatusError): status = 404
class Conflict(_StatusError): status = 409
class PayloadTooLarge(_StatusError): status = 413
class UnsupportedMediaType(_StatusError): status = 415
class UnprocessableEntity(_StatusError): status = 422


class MethodNotAllowed(_StatusError):
    status = 405

    def __init__(self, allow=('POST',), error=None):
        super().__init__(error)
        if isinstance(allow, str):
            allow = (allow,)
        self.headers = (('Allow', ', '.join(allow)),)


class _RetryLater(_StatusError):
    """A status that may say when to come back: ``Retry-After`` in seconds."""

    def __init__(self, error=None, retry_after=None):
        super().__init__(error)
        if retry_after is not None:
            self.headers = (('Retry-After', str(int(retry_after))),)


class TooManyRequests(_RetryLater): status = 429
class ServiceUnavailable(_RetryLater): status = 503
