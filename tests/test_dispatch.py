"""The wire protocol of DESIGN.md, through a real server on a real socket;
then ``apiphant.app(product)``, the same dispatch as a plain WSGI callable,
called in-process with environs as any WSGI server (wsgiref's defaults)
builds them."""
import io
import socket
import time
import wsgiref.util
import wsgiref.validate
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests

import apiphant
from conftest import PRODUCTS, raw_exchange

NOT_AN_OBJECT = {'error': 'Request content should be JSON Object'}
NOT_FOUND = {'error': '404 Not Found'}
INTERNAL = {'error': '500 Internal Server Error'}


def post(server, path, data=None, **kwargs):
    if isinstance(data, (dict, list)):
        kwargs['json'] = data
    elif data is not None:
        kwargs['data'] = data
        kwargs.setdefault('headers', {}).setdefault('Content-Type', 'application/json')
    return requests.post(server.url + path, timeout=10, **kwargs)


def test_echo(proto):
    response = post(proto, '/api/v0/echo/read', {'hello': 'world', 'nested': {'a': [1, {'b': 2}]}})
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/json'
    assert response.json() == {'hello': 'world', 'nested': {'a': [1, {'b': 2}]}, 'server': 'proto'}
    assert response.headers['X-Request-Id']


def test_empty_body_is_an_empty_object(proto):
    assert post(proto, '/api/v0/echo/read').json() == {'server': 'proto'}


def test_none_is_an_empty_object(proto):
    response = post(proto, '/api/v0/echo/create', {'x': 1})
    assert (response.status_code, response.json()) == (200, {})


@pytest.mark.parametrize('body', [
    b'[1, 2]', b'"text"', b'42', b'null', b'true', b'{"a": 1', b'{"a": 1} x', b'\xff\xfe{}',
    b'\xef\xbb\xbf{}', b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}', b'{"a": 01}',
    b'{"a": "\\ud800"}', b'{"a": "\xc3\x28"}', b'   ', b"{'a': 1}",
], ids=repr)
def test_not_a_json_object(proto, body):
    response = post(proto, '/api/v0/echo/read', body)
    assert (response.status_code, response.json()) == (400, NOT_AN_OBJECT)


def test_nested_objects_have_attribute_access(proto):
    response = post(proto, '/api/v0/a/b/c/read', {'outer': {'inner': 'deep'}})
    assert response.json() == {'target': 'a/b/c', 'nested': 'deep'}


def test_nested_targets_module_and_package(proto):
    assert post(proto, '/api/v0/a/read').json() == {'target': 'a'}
    assert post(proto, '/api/v1/echo/read').json() == {'version': 1}


def test_custom_actions(proto):
    assert post(proto, '/api/v0/custom/login', {'login': 'x'}).json() == {'logged_in': 'x'}
    assert post(proto, '/api/v0/custom/list').json() == {'listed': True}
    assert post(proto, '/api/v0/custom/list_all').status_code == 404


@pytest.mark.parametrize('path', [
    '/', '/api', '/api/v0', '/api/v0/echo', '/api/v0/echo/', '/api/v0/echo/read/', '/api/v0/echo/list',
    '/api/v2/echo/read', '/api/vx/echo/read', '/api/common/echo/read', '/api/v0/nothing/read',
    '/api/v0/../v0/echo/read', '/api/v0/echo/../echo/read', '/api/v0/%2e%2e/v0/echo/read',
    '/api/v0/a%2Fb%2Fc/read', '/api/v0/a/b%2Fc/read', '/api/v0/echo/__init__', '/api/v0/traps/_private',
    '/api/v0/traps/__init__', '/api/v0/traps/os', '/api/v0/traps/join', '/api/v0/traps/helper',
    '/api/v0/traps/read', '/api/v0/traps/create', '/api/v0/traps/update', '/api/v0/__init__/read',
    '//api/v0/echo/read', '/API/V0/ECHO/READ', '/api/v0/echo/read%00',
    '/api/v0/echo.read', '/api/v0/echo/__class__', '/api/v0/echo/__dict__',
], ids=str)
def test_never_routed(proto, path):
    response = raw_exchange(proto, f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}'.encode())
    assert response.startswith(b'HTTP/1.1 404 ')
    assert response.endswith(b'{"error":"404 Not Found"}')


def test_a_query_string_is_not_part_of_the_path(proto):
    assert post(proto, '/api/v0/echo/read?x=1/../', {'a': 1}).json() == {'a': 1, 'server': 'proto'}


def test_routed_trap_module_still_serves_its_real_action(proto):
    assert post(proto, '/api/v0/traps/delete').json() == {'ok': True}


@pytest.mark.parametrize('method', ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])
def test_other_methods_get_405(proto, method):
    response = requests.request(method, proto.url + '/api/v0/echo/read', timeout=10)
    assert response.status_code == 405
    assert response.headers['Allow'] == 'POST'
    assert response.json() == {'error': '405 Method Not Allowed'}


def test_health(proto):
    response = requests.get(proto.url + '/health', timeout=10)
    assert (response.status_code, response.json()) == (200, {'ok': True})
    assert requests.put(proto.url + '/health', timeout=10).status_code == 405


def test_head_gets_405_without_a_body(proto):
    response = requests.head(proto.url + '/api/v0/echo/read', timeout=10)
    assert response.status_code == 405
    assert response.headers['Allow'] == 'POST'


def test_unknown_path_with_another_method_is_404(proto):
    assert requests.get(proto.url + '/api/v0/nothing/read', timeout=10).status_code == 404


@pytest.mark.parametrize('status', [400, 401, 402, 403, 404, 405, 409, 410, 413, 418, 422, 429, 451, 500, 502, 503, 504, 499])
def test_any_status(proto, status):
    response = post(proto, '/api/v0/errors/read', {'status': status})
    assert response.status_code == status
    assert response.json()['error'].startswith(f'{status} ')
    assert response.headers['Content-Type'] == 'application/json'


def test_status_line_phrases(proto):
    for status, line in [(401, '401 Unauthorized'), (409, '409 Conflict'),
                         (422, '422 Unprocessable Content'), (413, '413 Content Too Large')]:
        response = post(proto, '/api/v0/errors/read', {'status': status})
        assert response.json() == {'error': line}
        assert response.raw.reason == line.split(' ', 1)[1]


def test_error_with_a_value(proto):
    response = post(proto, '/api/v0/errors/read', {'status': 409, 'error': {'conflict': 'version'}})
    assert (response.status_code, response.json()) == (409, {'error': {'conflict': 'version'}})


@pytest.mark.parametrize('cls, args, status, body', [
    ('BadRequest', ['id', 'invalid', 'must be positive'], 400,
     {'error': {'field': 'id', 'state': 'invalid', 'explain': 'must be positive'}}),
    ('Missing', ['id'], 400, {'error': {'field': 'id', 'state': 'missing'}}),
    ('Invalid', ['id', 0], 400, {'error': {'field': 'id', 'state': 'invalid', 'explain': 0}}),
    ('Invalid', ['id', -1], 400, {'error': {'field': 'id', 'state': 'invalid', 'explain': -1}}),
    ('Unauthorized', [], 401, {'error': '401 Unauthorized'}),
    ('Forbidden', ['not yours'], 403, {'error': 'not yours'}),
    ('NotFound', [], 404, NOT_FOUND),
    ('MethodNotAllowed', [], 405, {'error': '405 Method Not Allowed'}),
    ('Conflict', [], 409, {'error': '409 Conflict'}),
    ('PayloadTooLarge', [], 413, {'error': '413 Content Too Large'}),
    ('UnprocessableEntity', [], 422, {'error': '422 Unprocessable Content'}),
    ('TooManyRequests', [], 429, {'error': '429 Too Many Requests'}),
    ('ServiceUnavailable', [None, 5], 503, {'error': '503 Service Unavailable'}),
])
def test_named_errors(proto, cls, args, status, body):
    response = post(proto, '/api/v0/errors/create', {'cls': cls, 'args': args})
    assert (response.status_code, response.json()) == (status, body)
    if cls == 'ServiceUnavailable':
        assert response.headers['Retry-After'] == '5'


@pytest.mark.parametrize('path', [
    '/api/v0/crash/read', '/api/v0/crash/create', '/api/v0/echo/update', '/api/v0/echo/delete',
    '/api/v0/types/create', '/api/v0/types/update', '/api/v0/errors/update',
])
def test_unexpected_errors_are_500_with_nothing_more(proto, path):
    response = post(proto, path, {'id': 1})
    assert (response.status_code, response.json()) == (500, INTERNAL)
    request_id = response.headers['X-Request-Id']
    assert proto.wait_for_output(rf'{path} failed, request id {request_id}\n(.|\n)*Traceback')


def test_traceback_goes_to_the_log_not_the_client(proto):
    response = post(proto, '/api/v0/crash/read')
    assert b'secret' not in response.content
    assert proto.wait_for_output('RuntimeError: secret detail')


def test_common_types_are_encoded(proto):
    assert post(proto, '/api/v0/types/read').json() == {
        'datetime': '2026-11-22T03:04:05+00:00', 'date': '2026-11-22', 'decimal': 12.5,
        'uuid': '12345678-1234-5678-1234-567812345678', 'set': [1, 2, 3], 'tuple': [1, 'two'],
        'int_keys': {'1': 'one'}}
    assert b'"decimal":12.50' in post(proto, '/api/v0/types/read').content


def test_context(proto):
    response = post(proto, '/api/v0/ctx/read', {'sleep': 0.01}, headers={'X-Custom': 'yes'})
    body = response.json()
    assert body['request_id'] == response.headers['X-Request-Id']
    assert body['same'] and body['client'] == '127.0.0.1' and body['custom'] == 'yes'


def test_request_id_from_the_client(proto):
    response = post(proto, '/api/v0/ctx/read', headers={'X-Request-Id': 'abc-123'})
    assert response.headers['X-Request-Id'] == 'abc-123' == response.json()['request_id']
    bad = post(proto, '/api/v0/ctx/read', headers={'X-Request-Id': 'a b\tc<script>'})
    assert bad.headers['X-Request-Id'] != 'a b\tc<script>'


def test_context_is_per_request_under_concurrency(proto):
    def call(i):
        return post(proto, '/api/v0/ctx/read', {'sleep': 0.2, 'marker': i}, headers={'X-Request-Id': f'req-{i}'})
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(call, range(20)))
    for i, response in enumerate(responses):
        assert response.json()['request_id'] == f'req-{i}' and response.json()['marker'] == i


def test_actions_are_cooperative(proto):
    """40 actions sleeping 0.5 s are all asleep at the same time: each one
    started before any one ended."""
    with ThreadPoolExecutor(40) as pool:
        answers = [r.json() for r in pool.map(
            lambda _: post(proto, '/api/v0/slow/read', {'seconds': 0.5}), range(40))]
    assert all(answer['slept'] == 0.5 for answer in answers)
    assert max(a['started'] for a in answers) < min(a['ended'] for a in answers)


def test_raw_environ(proto):
    response = post(proto, '/api/v0/raw/create', b'a=1&b=2',
                    headers={'Content-Type': 'application/x-www-form-urlencoded'})
    assert response.json() == {'method': 'POST', 'content_type': 'application/x-www-form-urlencoded',
                               'body': 'a=1&b=2'}
    assert requests.get(proto.url + '/api/v0/raw/create', timeout=10).status_code == 405


def test_raw_environ_with_methods(proto):
    response = requests.get(proto.url + '/api/v0/raw/read?q=1', timeout=10)
    assert response.json() == {'method': 'GET', 'query': 'q=1'}
    assert requests.put(proto.url + '/api/v0/raw/read', timeout=10).headers['Allow'] == 'GET, POST'


def test_raw_response(proto):
    response = post(proto, '/api/v0/raw/update', {'word': 'hello'})
    assert (response.status_code, response.headers['Content-Type'], response.content) == \
        (201, 'text/plain', b'raw hello')
    assert post(proto, '/api/v0/raw/update', b'[1]').json() == NOT_AN_OBJECT


@pytest.mark.parametrize('status, line', [('204 No Content', b'204 No Content'), ('204 Nothing', b'204 No Content'),
                                          ('304 Not Modified', b'304 Not Modified')])
def test_a_raw_204_or_304_has_no_length_type_or_body_and_the_connection_goes_on(proto, status, line):
    """RFC 9110 8.6: sent with a length or a body, the next answer on the
    connection would be read wrong."""
    request = (b'POST /api/v0/raw/update HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
               b'Content-Length: %d\r\n\r\n%s')
    bare = orjson.dumps({'status': status})
    echo = b'{"after": 1}'
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        sock.sendall(request % (len(bare), bare) + (request % (len(echo), echo)).replace(b'raw/update', b'echo/read'))
        received = b''
        while not received.endswith(b'"server":"proto"}'):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    first, _, rest = received.partition(b'\r\n\r\n')
    assert first.startswith(b'HTTP/1.1 ' + line + b'\r\n')
    assert b'\ncontent-length:' not in first.lower() and b'\ncontent-type:' not in first.lower()
    assert rest.startswith(b'HTTP/1.1 200 OK\r\n') and rest.endswith(b'{"after":1,"server":"proto"}')


def test_a_raw_204_with_a_body_is_a_500_and_the_connection_goes_on(proto):
    with requests.Session() as session:
        response = session.post(proto.url + '/api/v0/raw/update', json={'status': '204 No Content', 'body': 'x'},
                                timeout=10)
        assert (response.status_code, response.json()) == (500, INTERNAL)
        assert session.post(proto.url + '/api/v0/echo/read', json={'i': 1}, timeout=10).json()['i'] == 1


def test_raw_response_header_injection_is_a_500(proto):
    response = post(proto, '/api/v0/raw/delete')
    assert (response.status_code, response.json()) == (500, INTERNAL)
    assert 'evil' not in response.headers.get('Set-Cookie', '')


def test_chunked_request_body(proto):
    body = b'{"hello": "chunks"}'
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(part), part) for part in (body[:5], body[5:])) + b'0\r\n\r\n'
    answer = raw_exchange(proto, b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                          b'Transfer-Encoding: chunked\r\n\r\n' + chunks)
    assert answer.startswith(b'HTTP/1.1 200 ') and answer.endswith(b'{"hello":"chunks","server":"proto"}')


def test_keep_alive_serves_several_requests_on_one_connection(proto):
    with requests.Session() as session:
        for i in range(5):
            assert session.post(proto.url + '/api/v0/echo/read', json={'i': i}, timeout=10).json()['i'] == i


def test_bad_input_does_not_stop_the_server(proto):
    for body in (b'[', b'\x00' * 100, b'{"a":' * 10000):
        post(proto, '/api/v0/echo/read', body)
    assert post(proto, '/api/v0/echo/read', {'still': 'here'}).status_code == 200


def test_one_response_is_one_write(proto):
    """Headers and body leave in one segment (TCP_NODELAY, no Nagle wait)."""
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        sock.sendall(b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
            b'Content-Length: 2\r\n\r\n{}')
        time.sleep(0.2)  # let the whole response arrive
        first = sock.recv(65536)
    assert first.startswith(b'HTTP/1.1 200') and first.endswith(b'{"server":"proto"}')


# --- the WSGI callable ---------------------------------------------------------------

@pytest.fixture(scope='module')
def application():
    return apiphant.app(str(PRODUCTS / 'proto'), max_body_size=64)


def call(application, path, body=b'', method='POST', validate=True, **environ):
    env = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': '', 'SCRIPT_NAME': '', 'wsgi.input': io.BytesIO(body),
           'CONTENT_LENGTH': str(len(body)) if body else '', 'CONTENT_TYPE': 'application/json' if body else '',
           **environ}
    wsgiref.util.setup_testing_defaults(env)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=dict(headers))
    chunks = (wsgiref.validate.validator(application) if validate else application)(env, start_response)
    try:
        answer['body'] = b''.join(chunks)
    finally:
        getattr(chunks, 'close', lambda: None)()
    return answer


@pytest.mark.parametrize('status', ['204 No Content', '304 Not Modified'])
def test_wsgi_a_raw_answer_without_content_has_neither_type_nor_length(application, status):
    answer = call(application, '/api/v0/raw/update', orjson.dumps({'status': status}))
    assert (answer['status'], answer['body']) == (status, b'')
    assert 'Content-Type' not in answer['headers'] and 'Content-Length' not in answer['headers']


def test_wsgi_echo(application):
    answer = call(application, '/api/v0/echo/read', b'{"a": 1}')
    assert answer['status'] == '200 OK'
    assert orjson.loads(answer['body']) == {'a': 1, 'server': 'proto'}
    assert answer['headers']['Content-Length'] == str(len(answer['body']))


def test_wsgi_path_info_is_used_without_a_raw_uri(application):
    assert call(application, '/api/v0/a/b/c/read')['status'] == '200 OK'
    assert call(application, '/api/v0/nothing/read')['status'] == '404 Not Found'


def test_wsgi_limits_and_methods(application):
    assert call(application, '/api/v0/echo/read', b'{"a": "%s"}' % (b'x' * 64))['status'] == '413 Content Too Large'
    answer = call(application, '/api/v0/echo/read', method='GET')
    assert (answer['status'], answer['headers']['Allow']) == ('405 Method Not Allowed', 'POST')
    bad = call(application, '/api/v0/echo/read', b'{}', validate=False, CONTENT_LENGTH='2x')
    assert bad['status'] == '400 Bad Request'


def test_wsgi_context_is_cleared_after_the_request(application):
    call(application, '/api/v0/ctx/read')
    assert not apiphant.context and apiphant.context.request_id is None
    assert dict(apiphant.context.headers) == {}


def test_wsgi_crash_is_logged_with_the_request_id(application, caplog):
    answer = call(application, '/api/v0/crash/read', HTTP_X_REQUEST_ID='trace-me')
    assert answer['status'] == '500 Internal Server Error'
    assert '/api/v0/crash/read failed, request id trace-me' in caplog.text
    assert 'RuntimeError: secret detail' in caplog.text


# --- a JSON media type, or 415 --------------------------------------------------------------------

@pytest.mark.parametrize('content_type', [
    'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml',
    'application/json; charset=latin-1', 'json', 'application/jsonx', '',
])
def test_a_body_that_is_not_said_to_be_json_is_415(proto, content_type):
    """A form or text/plain POST, which a browser sends across sites without a
    preflight, never reaches an action."""
    response = requests.post(proto.url + '/api/v0/ctx/read', data=b'{"marker": "ran"}',
                             headers={'Content-Type': content_type}, timeout=10)
    assert (response.status_code, response.json()) == (415, {
        'error': 'Request content should be JSON: send Content-Type: application/json'})


def test_a_body_without_a_content_type_is_415(proto):
    answer = raw_exchange(proto, b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 415 ')


@pytest.mark.parametrize('content_type', [
    'application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"',
    'application/merge-patch+json', 'application/vnd.api+json; charset=utf8',
])
def test_json_media_types_are_served(proto, content_type):
    response = requests.post(proto.url + '/api/v0/echo/read', data=b'{"a": 1}',
                             headers={'Content-Type': content_type}, timeout=10)
    assert (response.status_code, response.json()) == (200, {'a': 1, 'server': 'proto'})


def test_no_body_needs_no_content_type(proto):
    assert requests.post(proto.url + '/api/v0/echo/read', timeout=10).json() == {'server': 'proto'}


def test_raw_environ_actions_take_any_media_type(proto):
    response = requests.post(proto.url + '/api/v0/raw/create', data=b'a=1', timeout=10,
                             headers={'Content-Type': 'application/x-www-form-urlencoded'})
    assert response.status_code == 200


def test_require_json_off_reads_any_body_as_json(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--require-json', 'off')
    response = requests.post(server.url + '/api/v0/echo/read', data=b'{"a": 1}',
                             headers={'Content-Type': 'text/plain'}, timeout=10)
    assert response.json() == {'a': 1, 'server': 'proto'}
