"""The one error shape: every error class renders ``{"error": ...}`` and its
own status line and headers."""
from collections.abc import Callable
from http import HTTPStatus

import orjson
import pytest

from apiphant import errors
from apiphant.codec import decode, encode
from apiphant.errors import (
    ApiError, BadRequest, Conflict, Forbidden, Invalid, MethodNotAllowed, Missing, NotFound,
    PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
    status_line)
from apiphant.request import Request

# One way to raise each exported class, and the status line it answers.
MAKERS: dict[str, tuple[Callable[[], ApiError], str]] = {
    'ApiError': (lambda: ApiError(418), "418 I'm a Teapot"),
    'BadRequest': (lambda: BadRequest('id', 'invalid', 'an int'), '400 Bad Request'),
    'Missing': (lambda: Missing('id'), '400 Bad Request'),
    'Invalid': (lambda: Invalid('id'), '400 Bad Request'),
    'Unauthorized': (Unauthorized, '401 Unauthorized'),
    'Forbidden': (Forbidden, '403 Forbidden'),
    'NotFound': (NotFound, '404 Not Found'),
    'MethodNotAllowed': (MethodNotAllowed, '405 Method Not Allowed'),
    'Conflict': (Conflict, '409 Conflict'),
    'PayloadTooLarge': (PayloadTooLarge, '413 Content Too Large'),
    'UnsupportedMediaType': (UnsupportedMediaType, '415 Unsupported Media Type'),
    'UnprocessableEntity': (UnprocessableEntity, '422 Unprocessable Content'),
    'TooManyRequests': (TooManyRequests, '429 Too Many Requests'),
    'ServiceUnavailable': (ServiceUnavailable, '503 Service Unavailable'),
}
EXPORTED_CLASSES = sorted(set(errors.__all__) - {'status_line', 'status_body'})

NAMED: list[tuple[type[ApiError], int, str]] = [
    (Unauthorized, 401, '401 Unauthorized'),
    (Forbidden, 403, '403 Forbidden'),
    (NotFound, 404, '404 Not Found'),
    (MethodNotAllowed, 405, '405 Method Not Allowed'),
    (Conflict, 409, '409 Conflict'),
    (PayloadTooLarge, 413, '413 Content Too Large'),
    (UnsupportedMediaType, 415, '415 Unsupported Media Type'),
    (UnprocessableEntity, 422, '422 Unprocessable Content'),
    (TooManyRequests, 429, '429 Too Many Requests'),
    (ServiceUnavailable, 503, '503 Service Unavailable'),
]

# RFC 9110 reason phrases, written out so that a change of Python's HTTPStatus shows.
RFC_9110 = {
    200: 'OK', 201: 'Created', 204: 'No Content', 301: 'Moved Permanently',
    304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
    404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable', 408: 'Request Timeout',
    409: 'Conflict', 410: 'Gone', 411: 'Length Required', 413: 'Content Too Large',
    414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable',
    422: 'Unprocessable Content', 429: 'Too Many Requests', 500: 'Internal Server Error',
    501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
    504: 'Gateway Timeout',
}


def test_every_exported_class_has_a_maker() -> None:
    assert sorted(MAKERS) == EXPORTED_CLASSES


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_exported_class_is_an_api_error(name: str) -> None:
    assert issubclass(getattr(errors, name), ApiError)


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_body_is_one_error_key(name: str) -> None:
    error = MAKERS[name][0]()
    body = error.to_dict()
    assert type(body) is dict
    assert list(body) == ['error']


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_body_encodes_to_one_key_json_object(name: str) -> None:
    assert list(decode(encode(MAKERS[name][0]().to_dict()))) == ['error']


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_status_line_of_each_class(name: str) -> None:
    make, line = MAKERS[name]
    error = make()
    assert error.status_line == line
    assert error.status == int(line.split()[0])


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_status_code_is_the_status(name: str) -> None:
    error = MAKERS[name][0]()
    assert error.status_code == error.status


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_headers_are_name_value_string_pairs(name: str) -> None:
    for header in MAKERS[name][0]().headers:
        assert len(header) == 2
        assert all(type(part) is str for part in header)


@pytest.mark.parametrize('name', EXPORTED_CLASSES)
def test_raised_and_caught_as_api_error(name: str) -> None:
    with pytest.raises(ApiError):
        raise MAKERS[name][0]()


@pytest.mark.parametrize(('cls', 'status', 'line'), NAMED)
def test_named_error_without_message_says_its_status_line(
        cls: type[ApiError], status: int, line: str) -> None:
    error = cls()
    assert error.status == status
    assert error.to_dict() == {'error': line}


@pytest.mark.parametrize(('cls', 'status', 'line'), NAMED)
def test_named_error_with_message(cls: type[ApiError], status: int, line: str) -> None:
    error = cls(error='no such task')
    assert error.status == status
    assert error.to_dict() == {'error': 'no such task'}


@pytest.mark.parametrize('cls', [cls for cls, _, _ in NAMED if cls not in (MethodNotAllowed,)])
def test_named_error_takes_the_message_positionally(cls: type[ApiError]) -> None:
    assert cls('no such task').to_dict() == {'error': 'no such task'}


@pytest.mark.parametrize('cls', [cls for cls, _, _ in NAMED
                                 if cls not in (MethodNotAllowed, ServiceUnavailable)])
def test_named_error_has_no_headers(cls: type[ApiError]) -> None:
    assert tuple(cls().headers) == ()


def test_method_not_allowed_allows_post_by_default() -> None:
    assert MethodNotAllowed().headers == (('Allow', 'POST'),)


def test_method_not_allowed_lists_the_allowed_methods() -> None:
    assert MethodNotAllowed(('GET', 'POST')).headers == (('Allow', 'GET, POST'),)


def test_method_not_allowed_with_one_method_as_a_string() -> None:
    assert MethodNotAllowed('GET').headers == (('Allow', 'GET'),)


def test_method_not_allowed_headers_are_per_instance() -> None:
    MethodNotAllowed(('GET',))
    assert MethodNotAllowed().headers == (('Allow', 'POST'),)
    assert ApiError(405).headers == ()


@pytest.mark.parametrize(('retry_after', 'value'), [(30, '30'), (0, '0'), (120.0, '120'), ('60', '60')])
def test_service_unavailable_retry_after(retry_after: object, value: str) -> None:
    assert ServiceUnavailable(retry_after=retry_after).headers == (('Retry-After', value),)


def test_service_unavailable_without_retry_after_has_no_header() -> None:
    assert tuple(ServiceUnavailable().headers) == ()


def test_service_unavailable_message_and_retry_after() -> None:
    error = ServiceUnavailable('draining', retry_after=5)
    assert error.to_dict() == {'error': 'draining'}
    assert error.status_line == '503 Service Unavailable'


@pytest.mark.parametrize('status', [status.value for status in HTTPStatus])
def test_every_standard_status_has_its_reason_phrase(status: int) -> None:
    line = ApiError(status).status_line
    code, _, phrase = line.partition(' ')
    assert code == str(status)
    assert phrase and phrase != 'Unknown'


@pytest.mark.parametrize(('status', 'phrase'), sorted(RFC_9110.items()))
def test_rfc_9110_reason_phrases(status: int, phrase: str) -> None:
    assert ApiError(status).status_line == f'{status} {phrase}'
    assert ApiError(status).to_dict() == {'error': f'{status} {phrase}'}


def test_teapot() -> None:
    assert ApiError(418).to_dict() == {'error': "418 I'm a Teapot"}


@pytest.mark.parametrize('status', [199, 299, 499, 599])
def test_unregistered_valid_status_is_unknown(status: int) -> None:
    if status in RFC_9110 or status in {s.value for s in HTTPStatus}:
        pytest.fail(f'{status} is registered; pick another')
    assert ApiError(status).status_line == f'{status} Unknown'


def test_499_unknown_body() -> None:
    assert ApiError(499).to_dict() == {'error': '499 Unknown'}


def test_http_status_member_is_accepted() -> None:
    assert ApiError(HTTPStatus.NOT_FOUND).status_line == '404 Not Found'


@pytest.mark.parametrize('status', ['404', True, False, 99, 600, None, -1, 0, 404.0, b'404', [404]])
def test_invalid_status_raises_value_error_where_raised(status: object) -> None:
    with pytest.raises(ValueError):
        ApiError(status)


@pytest.mark.parametrize('status', ['404', True, 99, 600, None, 404.0])
def test_status_line_rejects_invalid_status(status: object) -> None:
    with pytest.raises(ValueError):
        status_line(status)


@pytest.mark.parametrize('status', [404, 413, 422, 499])
def test_status_line_function(status: int) -> None:
    assert status_line(status) == ApiError(status).status_line


@pytest.mark.parametrize('error', ['', {}, 0, [], False, 0.0, 'boom', {'field': 'id'}, [1, 2]])
def test_error_other_than_none_is_kept_as_given(error: object) -> None:
    body = ApiError(409, error).to_dict()
    assert body['error'] is error


def test_error_none_is_the_status_line() -> None:
    assert ApiError(409, None).to_dict() == {'error': '409 Conflict'}
    assert ApiError(409).error is None


def test_api_error_is_an_exception_with_args() -> None:
    error = ApiError(404, 'gone')
    assert isinstance(error, Exception)
    assert error.args == (404, 'gone')


@pytest.mark.parametrize('explain', [0, -1, False, 0.0, {'min': 1}, {}, [], 'an int', True])
def test_bad_request_shows_explain(explain: object) -> None:
    error = BadRequest('id', 'invalid', explain)
    assert error.to_dict() == {'error': {'field': 'id', 'state': 'invalid', 'explain': explain}}
    assert error.to_dict()['error']['explain'] is explain


@pytest.mark.parametrize('explain', [None, ''])
def test_bad_request_leaves_out_empty_explain(explain: object) -> None:
    error = BadRequest('id', 'invalid', explain)
    assert error.to_dict() == {'error': {'field': 'id', 'state': 'invalid'}}


def test_bad_request_is_400() -> None:
    error = BadRequest('id', 'invalid')
    assert (error.status, error.status_code, error.status_line) == (400, 400, '400 Bad Request')


def test_bad_request_error_reads_as_attributes() -> None:
    error = BadRequest('id', 'invalid', 'an int')
    assert isinstance(error.error, Request)
    assert (error.error.field, error.error.state, error.error.explain) == ('id', 'invalid', 'an int')


def test_bad_request_keeps_field_and_explain() -> None:
    error = BadRequest('id', 'invalid', 0)
    assert (error.field, error.explain) == ('id', 0)


@pytest.mark.parametrize(('cls', 'state'), [(Missing, 'missing'), (Invalid, 'invalid')])
def test_typed_bad_request_state(cls: type[BadRequest], state: str) -> None:
    error = cls('name')
    assert isinstance(error, BadRequest)
    assert error.status == 400
    assert error.to_dict() == {'error': {'field': 'name', 'state': state}}
    assert error.error.state == state


@pytest.mark.parametrize(('cls', 'state'), [(Missing, 'missing'), (Invalid, 'invalid')])
def test_typed_bad_request_with_explain(cls: type[BadRequest], state: str) -> None:
    error = cls('name', 'a name')
    assert error.to_dict() == {'error': {'field': 'name', 'state': state, 'explain': 'a name'}}


@pytest.mark.parametrize(('cls', 'explain'), [(Missing, 0), (Invalid, 0), (Invalid, False), (Missing, -1)])
def test_typed_bad_request_shows_falsy_explain(cls: type[BadRequest], explain: object) -> None:
    assert cls('n', explain).to_dict()['error']['explain'] is explain


@pytest.mark.parametrize('cls', [Missing, Invalid])
def test_typed_bad_request_body_encodes(cls: type[BadRequest]) -> None:
    assert decode(encode(cls('id', {'max': 3}).to_dict())) == {
        'error': {'field': 'id', 'state': cls.state, 'explain': {'max': 3}}}


def test_bad_request_field_keeps_its_order_in_json() -> None:
    assert encode(Invalid('id', 'x').to_dict()) == b'{"error":{"field":"id","state":"invalid","explain":"x"}}'


# --- one shape for every rejection, wherever it is made ----------------------------------------

_ECHO = b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
_ERRORS = b'POST /api/v0/errors/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
_FIELDS = b'POST /api/v0/fields/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'


def _with_body(start, body):
    return start + b'Content-Length: %d\r\n\r\n%s' % (len(body), body)


REJECTIONS = {  # what: (raw request, status, the error: the status line, or a field error's field and state)
    'not an object': (_with_body(_ECHO, b'[1]'), 400, 'Request content should be JSON Object'),
    'framing': (_ECHO + b'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400, '400 Bad Request'),
    'no such action': (_with_body(b'POST /api/v0/echo/nothing HTTP/1.1\r\nHost: x\r\n', b'{}'), 404, '404 Not Found'),
    'not POST': (b'GET /api/v0/echo/read HTTP/1.1\r\nHost: x\r\n\r\n', 405, '405 Method Not Allowed'),
    'conflict': (_with_body(_ERRORS, b'{"cls": "Conflict"}'), 409, '409 Conflict'),
    'too large': (_ECHO + b'Content-Length: 999999999\r\n\r\n', 413, '413 Content Too Large'),
    'long target': (b'POST /' + b'a' * 9000 + b' HTTP/1.1\r\nHost: x\r\n\r\n', 414, '414 URI Too Long'),
    'many headers': (_ECHO + b'X-A: b\r\n' * 101 + b'\r\n', 431, '431 Request Header Fields Too Large'),
    'gzip': (_ECHO + b'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501, '501 Not Implemented'),
    'unavailable': (_with_body(_ERRORS, b'{"cls": "ServiceUnavailable"}'), 503, '503 Service Unavailable'),
    'HTTP/2.0': (b'POST /api/v0/echo/read HTTP/2.0\r\nHost: x\r\n\r\n', 505, '505 HTTP Version Not Supported'),
    'missing field': (_with_body(_FIELDS, b'{}'), 400, ('id', 'missing')),
    'invalid field': (_with_body(_FIELDS, b'{"id": "seven"}'), 400, ('id', 'invalid')),
}


@pytest.mark.parametrize('what', REJECTIONS)
def test_every_rejection_has_one_shape(proto, what):
    """Whether the front, dispatch, field() or the action rejects: the status,
    a JSON type, and a body of one key, ``error``: the status line (or a
    sentence), or a field error with the field and its state."""
    from conftest import raw_exchange
    data, status, expected = REJECTIONS[what]
    answer = raw_exchange(proto, data, read_until_close=status in (400, 413, 414, 431, 501, 505)
                          and not isinstance(expected, tuple) and what != 'not an object')
    head, _, body = answer.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    assert lines[0].startswith(f'HTTP/1.1 {status} '), answer[:200]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(':') for line in lines[1:])}
    assert headers['content-type'] == 'application/json'
    assert int(headers['content-length']) == len(body)
    error = orjson.loads(body)
    assert list(error) == ['error']
    if isinstance(expected, tuple):
        assert (error['error']['field'], error['error']['state']) == expected
        assert set(error['error']) <= {'field', 'state', 'explain'}
    else:
        assert error['error'] == expected
