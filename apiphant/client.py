"""apiphant's Python client: an action is a method call.

    from apiphant.client import Client
    api = Client('https://api.example.com', token='secret')
    task = api.v0.tasks.create(title='x')      # POST /api/v0/tasks/create
    task.id, task['title']                      # the answer, as actions get requests

Rules:

1. ``api.v0.a.b.read(body=None, /, **fields)`` posts ``{**body, **fields}``
   as JSON (always with ``Content-Type: application/json``; ``{}`` when
   empty) to ``/api/v0/a/b/read`` and returns the answer object as a
   ``Request`` (a dict with attribute access). ``api.v0['import']`` names a
   segment that is a Python keyword; ``api.call('v0/a/b/read', body, ...)``
   (or ``'/api/v0/a/b/read'``) takes per-call options.
2. Any status but 2xx raises the ``apiphant.errors`` class of its status
   (``Missing`` or ``Invalid`` by the state of a field error, ``BadRequest``
   for another 400, ``ApiError`` itself for a status without a class, 500
   included), carrying ``status``, ``error`` (the answer's ``"error"``),
   ``body`` (the whole answer), ``request_id``, ``retry_after``, ``path``
   (``/api/v0/tasks/create``), ``response``, and for a 400 ``field``,
   ``state`` and ``explain``. No answer raises ``NetworkError`` (a
   ``ConnectionError``); none within the timeout ``Timeout`` (a
   ``NetworkError`` and a ``TimeoutError``).
3. Only an action safe to repeat is tried again: read, list, group, stats,
   sample, the names or paths (``'v0/tasks/search'``) given in ``safe``, or
   a call made with ``retry=True`` (``retry=False``: never). It is tried
   again on a ``NetworkError`` that is not a ``Timeout`` (the time given is
   spent) and on a 503, at most ``retries`` more times: after the 503's
   ``Retry-After`` when it says one (one longer than ``max_retry_after`` is
   raised at once), else after an exponential backoff with jitter.
4. ``timeout`` (seconds, 10 by default; None: none) bounds connecting and
   each wait for bytes of the answer, on every attempt.
5. ``token``, a string or a callable giving one (asked before each attempt:
   where a token refresh plugs in), goes in ``Authorization: Bearer``.
   ``Login(url, login, password)`` is such a callable for a product's
   ``Accounts``: it logs in at the first call, refreshes the access token
   before it expires, and logs in again when a refresh is refused.

One ``requests.Session`` per client keeps connections alive; ``close()``
(or ``with Client(...) as api:``) ends them.
"""
import email.utils
import random
import re
import time

import orjson
import requests
from requests.adapters import HTTPAdapter

from apiphant import __version__
from apiphant.errors import (
    ApiError, BadRequest, Conflict, Forbidden, Invalid, MethodNotAllowed, Missing, NotFound,
    PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnprocessableEntity,
    UnsupportedMediaType, status_line)
from apiphant.request import Request

__all__ = ['Client', 'Login', 'NetworkError', 'Timeout', 'SAFE_ACTIONS', 'error_of']

SAFE_ACTIONS = frozenset({'read', 'list', 'group', 'stats', 'sample'})
_SEGMENT = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_DEFAULT = object()
_BY_STATUS = {cls.status: cls for cls in (
    Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, PayloadTooLarge,
    UnsupportedMediaType, UnprocessableEntity, TooManyRequests, ServiceUnavailable)}
_BY_STATE = {'missing': Missing, 'invalid': Invalid}


class NetworkError(ConnectionError):
    """No answer: the connection failed or broke before an answer came."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class Timeout(NetworkError, TimeoutError):
    """No answer within the timeout."""


def error_of(status, body, path=None, response=None):
    """The ApiError an answer of ``status`` with the decoded ``body`` stands for."""
    error = body['error'] if isinstance(body, dict) and 'error' in body else status_line(status)
    cls = _BY_STATUS.get(status, ApiError)
    if status == 400:
        cls = BadRequest
        if isinstance(error, dict) and 'field' in error:
            cls = _BY_STATE.get(error.get('state'), BadRequest)
    # Made without the server-side constructors, whose arguments differ per
    # class: the client keeps what the server said, as it said it.
    raised = cls.__new__(cls)
    ApiError.__init__(raised, status, error)
    if issubclass(cls, BadRequest):
        detail = error if isinstance(error, dict) else {}
        raised.field, raised.state, raised.explain = detail.get('field'), detail.get('state'), detail.get('explain')
    headers = response.headers if response is not None else {}
    raised.body, raised.path, raised.response = body, path, response
    raised.request_id = headers.get('X-Request-Id')
    raised.retry_after = retry_after(headers.get('Retry-After'))
    shown = error if isinstance(error, str) else orjson.dumps(error).decode()
    raised.args = (f'{path}: {shown}' if path else shown,)
    return raised


def retry_after(value):
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when none or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class Target:
    """A path being written: ``api.v0.tasks`` reads segments, a call posts to them."""

    __slots__ = ('_client', '_segments')

    def __init__(self, client, segments):
        self._client, self._segments = client, segments

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name):
        if not isinstance(name, str) or not _SEGMENT.fullmatch(name):
            raise ValueError(f'a path segment is a Python identifier, not {name!r}')
        return Target(self._client, self._segments + (name,))

    def __call__(self, body=None, /, **fields):
        return self._client.call('/'.join(self._segments), body, fields=fields)

    def __repr__(self):
        return f'<apiphant action {"/".join(self._segments)} at {self._client.base_url}>'


class Client:
    """``Client('https://host', token=..., timeout=10, retries=3, backoff=0.2,
    max_backoff=5, max_retry_after=30, safe=(), headers=None)``; ``api.v0``
    (any ``v<N>``) starts a path. Seconds throughout."""

    def __init__(self, base_url, *, token=None, timeout=10.0, retries=3, backoff=0.2, max_backoff=5.0,
                 max_retry_after=30.0, safe=(), headers=None):
        if isinstance(safe, str):
            raise TypeError(f'safe is a list of action names or paths, not the string {safe!r}')
        self.base_url = base_url.rstrip('/')
        self.token, self.timeout, self.retries = token, timeout, retries
        self.backoff, self.max_backoff, self.max_retry_after = backoff, max_backoff, max_retry_after
        self.safe = SAFE_ACTIONS | frozenset(path.strip('/') for path in safe)
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=0)  # the retries are this client's, by its rules
        self.session.mount('http://', adapter)
        self.session.mount('https://', adapter)
        self.session.headers.update({'User-Agent': f'apiphant-client/{__version__}', 'Accept': 'application/json',
                                     **(headers or {})})

    def __getattr__(self, name):
        if re.fullmatch(r'v\d+', name):
            return Target(self, (name,))
        raise AttributeError(f'{type(self).__name__!r} object has no attribute {name!r}; '
                             f'an action path starts with a version: api.v0.<target>.<action>')

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.session.close()

    def is_safe(self, path):
        """Whether the action at ``path`` (``v0/tasks/read``, ``/api/v0/tasks/read``) may be repeated."""
        path = path.strip('/').removeprefix('api/')
        return path.rsplit('/', 1)[-1] in self.safe or path in self.safe

    def authorization(self):
        """The ``Authorization`` header of the next attempt, or None. A callable
        token is asked each time, so a refreshed token is used at once."""
        token = self.token() if callable(self.token) else self.token
        return f'Bearer {token}' if token else None

    def call(self, path, body=None, *, fields=None, timeout=_DEFAULT, retry=None, request_id=None, headers=None):
        """POST ``{**body, **fields}`` to ``/api/<path>``; the answer. ``retry``:
        True (safe to repeat), False (never repeated), None (by its name);
        ``request_id`` goes in ``X-Request-Id``, the same on each attempt."""
        if body is not None and not isinstance(body, dict):
            raise TypeError(f'the body of a call is a dict, not {type(body).__name__}')
        payload = orjson.dumps({**(body or {}), **(fields or {})})
        path = '/api/' + path.strip('/').removeprefix('api/')  # v0/a/read or /api/v0/a/read, as in client.js
        safe = self.is_safe(path) if retry is None else retry
        attempt = 0
        while True:
            try:
                return self._attempt(path, payload, self.timeout if timeout is _DEFAULT else timeout,
                                     request_id, headers)
            except (ApiError, NetworkError) as failure:
                wait = self.delay(failure, attempt) if safe and attempt < self.retries else None
                if wait is None:
                    raise
            time.sleep(wait)
            attempt += 1

    def delay(self, failure, attempt):
        """Seconds to wait before another try after ``failure`` (attempt 0 is
        the first), or None: no other try."""
        if isinstance(failure, ServiceUnavailable) and failure.retry_after is not None:
            return failure.retry_after if failure.retry_after <= self.max_retry_after else None
        if not isinstance(failure, (ServiceUnavailable, NetworkError)) or isinstance(failure, Timeout):
            return None
        ceiling = min(self.max_backoff, self.backoff * 2 ** attempt)
        return ceiling / 2 + random.random() * ceiling / 2

    def _attempt(self, path, payload, timeout, request_id, headers):
        sent = {**(headers or {}), 'Content-Type': 'application/json'}
        authorization = self.authorization()
        if authorization:
            sent['Authorization'] = authorization
        if request_id:
            sent['X-Request-Id'] = request_id
        url = self.base_url + path
        try:
            response = self.session.post(url, data=payload, headers=sent,
                                         timeout=None if timeout is None else (timeout, timeout))
        except requests.Timeout as error:
            raise Timeout(f'POST {url}: no answer within {timeout} s', path) from error
        except requests.RequestException as error:
            raise NetworkError(f'POST {url}: no answer: {error}', path) from error
        body = _decoded(response)
        if 200 <= response.status_code < 300:
            return Request(body) if isinstance(body, dict) else Request() if body in (None, '') else body
        raise error_of(response.status_code, body, path, response)


def _decoded(response):
    if not response.content:
        return None
    if 'json' in response.headers.get('Content-Type', ''):
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
    return response.text


class Login:
    """The access token of a user of a product's ``Accounts``, kept fresh:
    ``Client(url, token=Login(url, 'ada@example.org', password))``.

    The first call logs in (``POST /api/<accounts>/login``); later calls
    answer the same access token until ``margin`` seconds before it
    expires, then refresh it (the refresh token rotates); a refresh that is
    refused (401: revoked, used, expired) logs in again. ``accounts`` is the
    path of the module that declares ``Accounts`` (``v0/auth``). ``logout()``
    revokes the refresh token and forgets both."""

    def __init__(self, base_url, login, password, *, accounts='v0/auth', margin=30.0, timeout=10.0):
        self.login, self._password = login, password
        self.accounts, self.margin = accounts.strip('/'), margin
        self.client = Client(base_url, timeout=timeout, retries=0)
        self.access_token = self.refresh_token = None
        self.expires = 0.0
        self.user = None

    def __call__(self):
        if self.access_token is None or time.monotonic() >= self.expires - self.margin:
            answer = None
            if self.refresh_token is not None:
                try:
                    answer = self.client.call(f'{self.accounts}/refresh', {'refresh_token': self.refresh_token})
                except Unauthorized:
                    answer = None
            if answer is None:
                answer = self.client.call(f'{self.accounts}/login', {'login': self.login, 'password': self._password})
            self._keep(answer)
        return self.access_token

    def _keep(self, answer):
        self.access_token, self.refresh_token = answer.access_token, answer.refresh_token
        self.expires = time.monotonic() + answer.expires_in
        self.user = answer.get('user')

    def logout(self):
        if self.access_token is not None:
            token = self()
            self.client.call(f'{self.accounts}/logout', {'refresh_token': self.refresh_token},
                             headers={'Authorization': f'Bearer {token}'})
        self.access_token = self.refresh_token = self.user = None
        self.expires = 0.0

    def close(self):
        self.client.close()

    def __repr__(self):  # never the password nor a token
        return f'Login({self.login!r} at {self.client.base_url})'
