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
6. An action named ``watch`` streams: ``api.v0.tasks.watch(where={...})``
   (or ``api.watch('v0/tasks/watch', body, last_event_id=...)``) is a
   ``Watch``, the iterable of the server-sent events of a live table
   (``Event(id, event, data)``: ``create``, ``update``, ``delete``,
   ``ready``, ``reset``), which reconnects by itself and resumes after the
   last event id (see ``Watch``).

One ``requests.Session`` per client keeps connections alive; ``close()``
(or ``with Client(...) as api:``) ends them.
"""
import collections
import email.utils
import random
import re
import socket
import threading
import time

import orjson
import requests
from requests.adapters import HTTPAdapter

from apiphant import __version__, sse
from apiphant.errors import (
    ApiError, BadRequest, Conflict, Forbidden, Invalid, MethodNotAllowed, Missing, NotFound,
    PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnprocessableEntity,
    UnsupportedMediaType, status_line)
from apiphant.request import Request

__all__ = ['Client', 'Login', 'Watch', 'Event', 'NetworkError', 'Timeout', 'SAFE_ACTIONS', 'error_of']

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
        if self._segments[-1] == 'watch':
            return self._client.watch('/'.join(self._segments), body, fields=fields)
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
        payload, path = _payload(body, fields), _api_path(path)
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

    def watch(self, path, body=None, *, fields=None, last_event_id=None, idle_timeout=45.0, headers=None):
        """The ``Watch`` of the watch action at ``path`` (``v0/tasks/watch``)
        with ``{**body, **fields}`` (``where``); nothing is sent before it
        is iterated."""
        return Watch(self, _api_path(path), _payload(body, fields), last_event_id=last_event_id,
                     idle_timeout=idle_timeout, headers=headers)

    def _post(self, path, payload, headers, timeout, *, stream=False):
        """One POST of ``payload`` (JSON bytes) to ``path`` with ``headers``
        and the token: the ``requests`` response, or NetworkError.
        ``timeout``: (connecting, each wait for bytes), or None."""
        sent = {**(headers or {}), 'Content-Type': 'application/json'}
        authorization = self.authorization()
        if authorization:
            sent['Authorization'] = authorization
        url = self.base_url + path
        try:
            return self.session.post(url, data=payload, headers=sent, stream=stream, timeout=timeout)
        except requests.Timeout as error:
            waited = timeout[isinstance(error, requests.ReadTimeout)]
            raise Timeout(f'POST {url}: no answer within {waited} s', path) from error
        except requests.RequestException as error:
            raise NetworkError(f'POST {url}: no answer: {error}', path) from error

    def _attempt(self, path, payload, timeout, request_id, headers):
        if request_id:
            headers = {**(headers or {}), 'X-Request-Id': request_id}
        response = self._post(path, payload, headers, None if timeout is None else (timeout, timeout))
        body = _decoded(response)
        if 200 <= response.status_code < 300:
            return Request(body) if isinstance(body, dict) else Request() if body in (None, '') else body
        raise error_of(response.status_code, body, path, response)


def _payload(body, fields):
    if body is not None and not isinstance(body, dict):
        raise TypeError(f'the body of a call is a dict, not {type(body).__name__}')
    return orjson.dumps({**(body or {}), **(fields or {})})


def _api_path(path):
    return '/api/' + path.strip('/').removeprefix('api/')  # v0/a/read or /api/v0/a/read, as in client.js


def _decoded(response):
    if not response.content:
        return None
    if 'json' in response.headers.get('Content-Type', ''):
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
    return response.text


Event = collections.namedtuple('Event', 'id event data')
Event.__doc__ = """One event of a ``Watch``: ``id`` (the last event id, a
string, as the stream said it), ``event`` (its type: ``create``,
``update``, ``delete``, ``ready``, ``reset``; ``message`` when unnamed),
``data`` (decoded JSON, objects as ``Request``; the text when not JSON)."""


class Watch:
    """The events of a watch action, across connections:
    ``for event in api.v0.tasks.watch(where={'done': False}): ...``.

    Rules:

    1. Each ``for`` over it (``iter()``) POSTs the body to the action with
       ``Accept: text/event-stream``, the token (asked again for each
       connection), and ``Last-Event-ID`` once an id was seen; leaving the
       loop (``break``, an exception: the loop's iterator is dropped, which
       CPython finalizes at once) closes the connection, and the next
       ``for`` resumes after ``last_event_id``.
       ``close()`` (or leaving ``with watch:``) ends the watch for good, from
       any thread: the loop ends without an error.
    2. It yields every event with data (``ready`` and ``reset`` too: a reset
       means the changes missed are lost, list again); ``last_event_id``
       follows each block of the stream, heartbeats (an ``id`` without data)
       included.
    3. When the stream ends (cleanly: the server drains or the token
       expired; or cut; or no byte for ``idle_timeout`` seconds, 3 of the
       server's 15 s heartbeats by default) it connects again after the
       server's ``retry`` (seconds; 1 until the stream says). A connection
       that gets no stream is tried again, forever, after that time doubled
       for each failure in a row (up to the client's ``max_backoff`` or
       ``retry``, whichever is longer; with jitter), on a ``NetworkError``,
       a ``408``, a ``429`` or a 5xx: after a ``429``'s or ``503``'s
       ``Retry-After`` when it says one (one longer than the client's
       ``max_retry_after`` is raised).
    4. A ``401`` when the token is a callable: the callable is asked for a
       fresh token (its ``refresh()`` when it has one, as ``Login`` does,
       else it is called again) and the connection is tried again at once;
       a second ``401`` in a row is raised. Any other status is raised as
       calls raise it (``Invalid`` for a bad where, ``Forbidden``, ...).
    """

    def __init__(self, client, path, payload, *, last_event_id=None, idle_timeout=45.0, headers=None):
        self.client, self.path, self.payload = client, path, payload
        self.last_event_id = None if last_event_id is None else str(last_event_id)
        self.idle_timeout, self.headers = idle_timeout, headers
        self.retry = 1.0
        self._response = None
        self._stop = threading.Event()

    def __iter__(self):
        return self._events()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def closed(self):
        return self._stop.is_set()

    def close(self):
        """End the watch: its connection is shut, its loops end."""
        self._stop.set()
        sock = _socket_of(self._response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread
            except OSError:
                pass

    def _events(self):
        failures, refreshed, wait = 0, False, 0.0
        while not self._stop.wait(wait):
            try:
                response = self._connect()
            except Unauthorized:
                if refreshed or not callable(self.client.token):
                    raise
                refresh = getattr(self.client.token, 'refresh', None)
                if refresh is not None:
                    refresh()
                refreshed, wait = True, 0.0
                continue
            except (ApiError, NetworkError) as failure:
                wait = self.delay(failure, failures)
                if wait is None:
                    raise
                failures += 1
                continue
            failures, refreshed = 0, False
            try:
                yield from self._read(response)
            finally:
                self._response = None
                response.close()
            wait = self.retry

    def delay(self, failure, failures):
        """Seconds to wait before connecting again after ``failure``, the
        ``failures``-th in a row from 0; None: it is raised."""
        if isinstance(failure, (TooManyRequests, ServiceUnavailable)) and failure.retry_after is not None:
            return failure.retry_after if failure.retry_after <= self.client.max_retry_after else None
        if isinstance(failure, NetworkError) or failure.status in (408, 429) or failure.status >= 500:
            ceiling = min(max(self.client.max_backoff, self.retry),
                          max(self.retry, self.client.backoff) * 2 ** failures)
            return max(self.retry, ceiling / 2 + random.random() * ceiling / 2)
        return None

    def _connect(self):
        headers = {**(self.headers or {}), 'Accept': 'text/event-stream'}
        if self.last_event_id is not None:
            headers['Last-Event-ID'] = self.last_event_id
        response = self.client._post(self.path, self.payload, headers, (self.client.timeout, self.idle_timeout),
                                     stream=True)
        kind = response.headers.get('Content-Type', '')
        if response.status_code == 200 and kind.startswith('text/event-stream'):
            self._response = response
            return response
        with response:
            body = _decoded(response)
        if response.ok:
            body = {'error': f'the answer is no event stream but {kind or "untyped"}'}
        raise error_of(response.status_code, body, self.path, response)

    def _read(self, response):
        """The events of one connection, until it ends or breaks."""
        parser = sse.Parser(self.last_event_id)
        try:
            for chunk in response.iter_content(chunk_size=None):
                if self.closed:
                    return
                for block in parser.feed(chunk):
                    self.last_event_id = block.last_event_id
                    if parser.retry is not None:
                        self.retry = parser.retry / 1000
                    if block.event is not None:
                        yield Event(block.last_event_id, block.event, _data(block.data))
        except requests.RequestException:
            pass  # cut, silent past idle_timeout, or shut by close()


def _socket_of(response):
    """The socket a streamed response reads (http.client's, under urllib3's),
    or None. Without it, a watch closed from another thread stops at its
    next bytes (a heartbeat at the latest)."""
    try:
        return response.raw._fp.fp.raw._sock
    except AttributeError:
        return None


def _data(text):
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return Request(value) if isinstance(value, dict) else value


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

    def refresh(self):
        """A new access token now (a server refused the one kept)."""
        self.expires = 0.0
        return self()

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
