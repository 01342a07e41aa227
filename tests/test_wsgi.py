"""``apiphant.app(product)`` is a plain WSGI callable: called here in-process,
with environs as any WSGI server (wsgiref's defaults) builds them."""
import io
import wsgiref.util
import wsgiref.validate

import orjson
import pytest

import apiphant
from conftest import PRODUCTS


@pytest.fixture(scope='module')
def application():
    return apiphant.app(str(PRODUCTS / 'proto'), max_body_size=64)


def call(application, path, body=b'', method='POST', validate=True, **environ):
    env = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': '', 'SCRIPT_NAME': '', 'wsgi.input': io.BytesIO(body),
           'CONTENT_LENGTH': str(len(body)) if body else '', **environ}
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


def test_echo(application):
    answer = call(application, '/api/v0/echo/read', b'{"a": 1}')
    assert answer['status'] == '200 OK'
    assert orjson.loads(answer['body']) == {'a': 1, 'server': 'proto'}
    assert answer['headers']['Content-Length'] == str(len(answer['body']))


def test_path_info_is_used_without_a_raw_uri(application):
    assert call(application, '/api/v0/a/b/c/read')['status'] == '200 OK'
    assert call(application, '/api/v0/nothing/read')['status'] == '404 Not Found'


def test_limits_and_methods(application):
    assert call(application, '/api/v0/echo/read', b'{"a": "%s"}' % (b'x' * 64))['status'] == '413 Content Too Large'
    answer = call(application, '/api/v0/echo/read', method='GET')
    assert (answer['status'], answer['headers']['Allow']) == ('405 Method Not Allowed', 'POST')
    bad = call(application, '/api/v0/echo/read', b'{}', validate=False, CONTENT_LENGTH='2x')
    assert bad['status'] == '400 Bad Request'


def test_context_is_cleared_after_the_request(application):
    call(application, '/api/v0/ctx/read')
    assert not apiphant.context and apiphant.context.request_id is None
    assert dict(apiphant.context.headers) == {}


def test_crash_is_logged_with_the_request_id(application, caplog):
    answer = call(application, '/api/v0/crash/read', HTTP_X_REQUEST_ID='trace-me')
    assert answer['status'] == '500 Internal Server Error'
    assert '/api/v0/crash/read failed, request id trace-me' in caplog.text
    assert 'RuntimeError: secret detail' in caplog.text
