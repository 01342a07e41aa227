"""apiphant.client against real proto servers: answers, every error class,
503s tried again (after their Retry-After) for safe actions only, broken
connections, timeouts, the token and the kept-alive session. Calls are
counted on the server (the proto product's flaky actions) or, for broken
connections, by a real TCP relay that drops the first ones it accepts."""
import datetime
import email.utils
import socket
import threading
import uuid

import pytest

from apiphant import errors
from apiphant.client import SAFE_ACTIONS, Client, NetworkError, Timeout, error_of, retry_after
from apiphant.request import Request
from conftest import PRODUCTS


@pytest.fixture
def api(proto):
    with Client(proto.url, backoff=0.01, max_backoff=0.05) as client:
        yield client


def key():
    return uuid.uuid4().hex


def calls(api, name):
    return api.v0.flaky.calls(key=name)


# --- answers --------------------------------------------------------------------------------------------

def test_an_action_is_a_method_and_its_answer_a_request(api):
    answer = api.v0.echo.read(hello='world', item={'tags': [{'a': 1}]})
    assert answer == {'hello': 'world', 'item': {'tags': [{'a': 1}]}, 'server': 'proto'}
    assert type(answer) is Request and answer.item.tags[0].a == 1


def test_a_body_dict_and_fields_are_merged(api):
    assert api.v0.echo.read({'from': 1, 'x': 1}, x=2) == {'from': 1, 'x': 2, 'server': 'proto'}
    assert api.v0.echo.read() == {'server': 'proto'}


def test_an_empty_answer_is_an_empty_request(api):
    answer = api.v0.echo.create(anything=True)
    assert answer == {} and type(answer) is Request


def test_nested_targets_keywords_and_call(api):
    assert api.v0.a.b.c.read() == api.call('v0/a/b/c/read')
    assert api.v0['a'].read() == api.call('/v0/a/read/') == api.call('/api/v0/a/read')
    with pytest.raises(ValueError, match='identifier'):
        api.v0['a/b']
    with pytest.raises(AttributeError, match='starts with a version'):
        api.tasks
    with pytest.raises(TypeError, match='a dict'):
        api.v0.echo.read(['not', 'an', 'object'])
    assert repr(api.v0.a.b) == f'<apiphant action v0/a/b at {api.base_url}>'


def test_every_call_says_json_and_carries_the_token_and_request_id(proto):
    name = key()
    with Client(proto.url, token='s3cret') as api:
        api.v0.flaky.read(key=name)
        api.call('v0/flaky/read', {'key': name}, request_id='client-test-1')
    with Client(proto.url) as anonymous:
        anonymous.v0.flaky.read(key=name)
        assert calls(anonymous, name).headers == [
            ['Bearer s3cret', 'application/json', None],
            ['Bearer s3cret', 'application/json', 'client-test-1'],
            [None, 'application/json', None]]


def test_a_callable_token_is_asked_before_each_attempt(proto):
    tokens = iter(['first', 'second', 'third'])
    name = key()
    with Client(proto.url, token=lambda: next(tokens), backoff=0.01) as api:
        assert api.v0.flaky.read(key=name, fails=1) == {'calls': 2}
        assert [headers[0] for headers in calls(api, name).headers] == ['Bearer first', 'Bearer second']


def test_one_connection_serves_many_calls(proto):
    with Relay(proto) as relay, Client(relay.url) as api:
        for number in range(5):
            assert api.v0.echo.read(n=number).n == number
        assert relay.accepted == 1


# --- errors ---------------------------------------------------------------------------------------------

NAMED = [
    ('BadRequest', ['id', 'bad', 'why'], 400, {'field': 'id', 'state': 'bad', 'explain': 'why'}),
    ('Missing', ['id'], 400, {'field': 'id', 'state': 'missing'}),
    ('Invalid', ['id', 'should be an integer'], 400,
     {'field': 'id', 'state': 'invalid', 'explain': 'should be an integer'}),
    ('Unauthorized', [], 401, '401 Unauthorized'),
    ('Forbidden', ['not yours'], 403, 'not yours'),
    ('NotFound', [], 404, '404 Not Found'),
    ('MethodNotAllowed', [], 405, '405 Method Not Allowed'),
    ('Conflict', [{'version': 3}], 409, {'version': 3}),
    ('PayloadTooLarge', [], 413, '413 Content Too Large'),
    ('UnsupportedMediaType', [], 415, '415 Unsupported Media Type'),
    ('UnprocessableEntity', ['no'], 422, 'no'),
    ('TooManyRequests', ['slow down', 7], 429, 'slow down'),
    ('ServiceUnavailable', ['busy', 3], 503, 'busy'),
]


@pytest.mark.parametrize('name, args, status, error', NAMED, ids=[case[0] for case in NAMED])
def test_each_error_is_raised_as_its_class(api, name, args, status, error):
    with pytest.raises(errors.ApiError) as caught:
        api.v0.errors.create(cls=name, args=args)
    raised = caught.value
    assert type(raised) is getattr(errors, name)
    assert (raised.status, raised.error, raised.body) == (status, error, {'error': error})
    assert raised.path == '/api/v0/errors/create' and raised.request_id and raised.response.status_code == status
    assert str(raised) == '/api/v0/errors/create: ' + (error if isinstance(error, str) else raised.response.text[9:-1])
    if status == 400:
        assert (raised.field, raised.state, raised.explain) == (error['field'], error['state'], error.get('explain'))
    assert raised.retry_after == {'TooManyRequests': 7, 'ServiceUnavailable': 3}.get(name)


@pytest.mark.parametrize('status, error', [(418, None), (400, 'plain words'), (500, {'a': 1}), (502, 'bad gateway')])
def test_a_status_without_a_class_is_an_api_error(api, status, error):
    with pytest.raises(errors.ApiError) as caught:
        api.v0.errors.read(status=status, error=error)
    expected = errors.BadRequest if status == 400 else errors.ApiError
    assert type(caught.value) is expected and caught.value.status == status
    assert caught.value.error == (errors.status_line(status) if error is None else error)
    if status == 400:
        assert (caught.value.field, caught.value.state) == (None, None)


def test_what_the_server_itself_refuses(api, apiphant_serve):
    with pytest.raises(errors.NotFound):
        api.v0.echo.no_such_action()
    with pytest.raises(errors.ApiError) as crash:
        api.v0.crash.read()
    assert (type(crash.value), crash.value.status, crash.value.error) == (
        errors.ApiError, 500, '500 Internal Server Error')
    small = apiphant_serve(PRODUCTS / 'proto', '--max-body-size', '1K')
    with Client(small.url) as limited, pytest.raises(errors.PayloadTooLarge) as large:
        limited.v0.echo.read(text='x' * 2000)
    assert large.value.status == 413


def test_a_field_error_explains_itself(api):
    with pytest.raises(errors.Invalid) as caught:
        api.v0.fields.read(id='seven')
    assert (caught.value.field, caught.value.state, caught.value.explain) == ('id', 'invalid', 'should be an integer')
    with pytest.raises(errors.Missing) as missing:
        api.v0.fields.read()
    assert (missing.value.field, missing.value.explain) == ('id', None)


def test_a_strict_action_refuses_other_keys(api):
    assert api.v0.strict.create(title='t', item={'name': 'n'}) == {'title': 't', 'name': 'n'}
    with pytest.raises(errors.Invalid) as top:
        api.v0.strict.create(title='t', item={}, colour='red')
    assert (top.value.field, top.value.explain) == ('colour', 'not a field of this request; fields: item, title')
    with pytest.raises(errors.Invalid) as inner:
        api.v0.strict.create(title='t', item={'name': 'n', 'size': 1})
    assert (inner.value.field, inner.value.explain) == ('size', 'not a field of item; fields: name')


# --- tried again: 503 -----------------------------------------------------------------------------------

def test_a_503_is_tried_again_after_its_retry_after(api):
    name = key()
    assert api.v0.flaky.read(key=name, fails=1, retry_after=1) == {'calls': 2}
    seen = calls(api, name)
    assert seen.calls == 2
    assert seen.at[1] - seen.at[0] >= 1  # the server saw the second try after the Retry-After it asked for


def test_a_503_without_retry_after_is_tried_again_after_a_backoff(api):
    name = key()
    assert api.v0.flaky.read(key=name, fails=3) == {'calls': 4}
    assert calls(api, name).calls == 4


def test_tries_stop_after_retries(proto):
    name = key()
    with Client(proto.url, retries=2) as api:
        with pytest.raises(errors.ServiceUnavailable) as caught:
            api.v0.flaky.read(key=name, fails=10, retry_after=0)
        assert caught.value.retry_after == 0
        assert calls(api, name).calls == 3


def test_a_retry_after_beyond_the_maximum_is_raised_at_once(api):
    name = key()
    with pytest.raises(errors.ServiceUnavailable) as caught:
        api.v0.flaky.read(key=name, fails=1, retry_after=600)
    assert caught.value.retry_after == 600
    assert calls(api, name).calls == 1


@pytest.mark.parametrize('action', ['create', 'search'])
def test_an_action_not_safe_to_repeat_is_tried_once(api, action):
    name = key()
    with pytest.raises(errors.ServiceUnavailable):
        api.v0.flaky[action](key=name, fails=1, retry_after=0)
    assert calls(api, name).calls == 1


def test_the_caller_says_what_is_safe(proto):
    first, second, third = key(), key(), key()
    with Client(proto.url, safe=['search'], backoff=0.01) as api:
        assert api.v0.flaky.search(key=first, fails=1) == {'calls': 2}
    with Client(proto.url, safe=['v0/flaky/create'], backoff=0.01) as api:
        assert api.v0.flaky.create(key=second, fails=1) == {'calls': 2}
        assert api.call('v0/flaky/search', {'key': third, 'fails': 1}, retry=True) == {'calls': 2}
        with pytest.raises(errors.ServiceUnavailable):
            api.call('v0/flaky/read', {'key': key(), 'fails': 1}, retry=False)
    with pytest.raises(TypeError, match='list'):
        Client(proto.url, safe='search')


def test_other_errors_are_not_tried_again(api):
    name = key()
    with pytest.raises(errors.Invalid):
        api.v0.flaky.read(key=name, fails='x')
    with pytest.raises(errors.TooManyRequests):
        api.call('v0/errors/create', {'cls': 'TooManyRequests', 'args': ['slow', 0]}, retry=True)
    assert calls(api, name).calls == 0


# --- tried again: broken connections --------------------------------------------------------------------

class Relay:
    """A TCP relay to a server that reads the first request of each of its
    first ``drop`` connections and closes it unanswered: a server that dies
    mid-request. It counts the connections it accepts."""

    def __init__(self, server, drop=0):
        self.target, self.drop, self.accepted = (server.host, server.port), drop, 0
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.url = f'http://127.0.0.1:{self.listener.getsockname()[1]}'
        self.sockets = [self.listener]

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        for sock in self.sockets:
            sock.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.sockets.append(client)
            if self.accepted <= self.drop:
                client.recv(65536)
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets.append(upstream)
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def _pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def test_a_broken_connection_is_tried_again_for_a_safe_action(proto, api):
    name = key()
    with Relay(proto, drop=2) as relay, Client(relay.url, backoff=0.01) as through:
        assert through.v0.flaky.read(key=name) == {'calls': 1}
        assert relay.accepted == 3
    assert calls(api, name).calls == 1


def test_a_broken_connection_is_raised_for_an_unsafe_action(proto, api):
    name = key()
    with Relay(proto, drop=1) as relay, Client(relay.url, backoff=0.01) as through:
        with pytest.raises(NetworkError) as caught:
            through.v0.flaky.create(key=name)
        assert relay.accepted == 1
        assert caught.value.path == '/api/v0/flaky/create' and not isinstance(caught.value, Timeout)
    assert calls(api, name).calls == 0


def test_no_server_is_a_network_error_after_the_retries():
    with socket.create_server(('127.0.0.1', 0)) as taken:
        port = taken.getsockname()[1]
    with Client(f'http://127.0.0.1:{port}', retries=2, backoff=0.01) as api:
        with pytest.raises(NetworkError) as caught:
            api.v0.echo.read()
    assert isinstance(caught.value, ConnectionError) and isinstance(caught.value.__cause__, Exception)


# --- timeouts -------------------------------------------------------------------------------------------

def test_no_answer_within_the_timeout_is_a_timeout_not_tried_again(proto, api, tmp_path):
    name, until = key(), tmp_path / 'release'
    with Client(proto.url, timeout=0.5) as impatient:
        with pytest.raises(Timeout) as caught:
            impatient.v0.flaky.read(key=name, until=str(until))
    until.touch()
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, NetworkError)
    assert calls(api, name).calls == 1


def test_a_timeout_is_there_by_default_and_per_call(proto, tmp_path):
    until = tmp_path / 'release'
    with Client(proto.url) as api:
        assert api.timeout == 10
        with pytest.raises(Timeout):
            api.call('v0/flaky/read', {'key': key(), 'until': str(until)}, timeout=0.2)
    until.touch()


# --- the rules, without a server ------------------------------------------------------------------------

def test_safe_actions():
    api = Client('http://127.0.0.1:9', safe=['search', '/v0/tasks/archive/'])
    assert SAFE_ACTIONS == {'read', 'list', 'group', 'stats', 'sample'}
    assert [api.is_safe(path) for path in ('/v0/tasks/read', 'v0/a/b/list', '/v0/tasks/create', '/v0/x/search',
                                           '/api/v0/tasks/archive', '/v0/other/archive')] == [
        True, True, False, True, True, False]


def test_delay():
    api = Client('http://127.0.0.1:9', backoff=1, max_backoff=3, max_retry_after=30)
    busy = error_of(503, {'error': 'busy'})
    later = error_of(503, {'error': 'busy'})
    later.retry_after = 12.0
    assert api.delay(later, 0) == 12.0
    later.retry_after = 31.0
    assert api.delay(later, 0) is None
    for attempt, ceiling in ((0, 1), (1, 2), (2, 3), (5, 3)):
        assert ceiling / 2 <= api.delay(busy, attempt) <= ceiling
        assert ceiling / 2 <= api.delay(NetworkError('x'), attempt) <= ceiling
    for failure in (Timeout('x'), error_of(404, None), error_of(429, {'error': 'slow'}), error_of(500, None)):
        assert api.delay(failure, 0) is None


def test_retry_after_values():
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=100)
    assert retry_after('3') == 3.0 and retry_after(' 0 ') == 0.0
    assert 50 < retry_after(email.utils.format_datetime(soon, usegmt=True)) <= 100
    assert retry_after('Wed, 21 Oct 2015 07:28:00 GMT') == 0.0
    assert [retry_after(value) for value in (None, '', 'soon', '-1', '1.5')] == [None] * 5


def test_error_of_a_body_that_is_not_json_keeps_it():
    raised = error_of(502, '<html>bad gateway</html>')
    assert (type(raised), raised.status, raised.error, raised.body) == (
        errors.ApiError, 502, '502 Bad Gateway', '<html>bad gateway</html>')
    assert raised.request_id is None and raised.retry_after is None


@pytest.fixture(scope='module')
def accounts(tmp_path_factory):
    """A product with Accounts, and a user of it: (server, login, password)."""
    import os
    import subprocess
    import sys
    from apiphant.pytest_plugin import ServedProduct
    url = f'sqlite:///{tmp_path_factory.mktemp("login") / "accounts.sqlite3"}'
    server = ServedProduct(PRODUCTS / 'accounts_product', env={'APIPHANT_DATABASE_URL': url}).start()
    password = 'a password of the client tests'
    added = subprocess.run([sys.executable, '-m', 'apiphant', 'users', str(PRODUCTS / 'accounts_product'), 'add',
                            'client@example.org', '--role', 'admin', '--password-stdin'], input=password + '\n',
                           capture_output=True, text=True, timeout=120, env={**os.environ, 'APIPHANT_DATABASE_URL': url})
    assert added.returncode == 0, added.stderr
    yield server, 'client@example.org', password
    server.stop()


def test_login_logs_in_once_then_refreshes_and_logs_in_again_when_refused(accounts):
    from apiphant.client import Login
    server, login, password = accounts
    token = Login(server.url, login, password)
    with Client(server.url, token=token) as api:
        assert api.v0.echo.read().roles == ['admin']
        first = token.access_token, token.refresh_token
        assert api.v0.echo.purge() == {'purged': True}
        assert (token.access_token, token.refresh_token) == first  # still fresh: no new login nor refresh
        token.expires = 0  # as if it were about to expire: refreshed, the refresh token rotated
        assert api.v0.echo.read().id == token.user['id']
        assert token.refresh_token != first[1] and token.access_token != first[0]
        with pytest.raises(errors.Unauthorized):  # the first refresh token is used up
            api.call('v0/auth/refresh', {'refresh_token': first[1]})
        token.expires = 0  # its family is revoked: the refresh is refused, and Login logs in again
        assert api.v0.echo.read().roles == ['admin']
        token.logout()
        assert token.access_token is None
        assert api.v0.echo.read().roles == ['admin']  # logs in again at need
    assert password not in repr(token) and token.access_token not in repr(token)
    token.close()


def test_login_with_a_wrong_password_raises_unauthorized(accounts):
    from apiphant.client import Login
    server, login, _ = accounts
    with Client(server.url, token=Login(server.url, login, 'not the password')) as api:
        with pytest.raises(errors.Unauthorized):
            api.v0.echo.read()
