"""Functional tests of a served product, as in 0.2::

    from apiphant.test import test, ANY
    test('echo', 'read', {"hello": "world"}, 200, {"hello": "world", "server": "myproduct"})
    test('tasks', 'create', {"title": "x"}, 200, {"id": ANY(int), "title": "x", ...})

``config`` says where the product is served (the pytest fixture
``apiphant_server`` points it at the server it starts).
"""
import json

import requests

from apiphant.request import Request

__all__ = ['test', 'config', 'ANY']

config = Request(
    host='127.0.0.1',
    port=8888,
    version='v0',
    token=None,  # a token every test() sends, unless given one
)  # can be updated by a caller script


class _Any:
    """Equal to anything (``ANY``), or to any instance of a type (``ANY(int)``),
    for values a test cannot know: ids, timestamps."""

    def __init__(self, kind=object):
        self.kind = kind

    def __call__(self, kind):
        return _Any(kind)

    def __eq__(self, other):
        if self.kind in (int, float) and type(other) is bool:
            return False
        return isinstance(other, self.kind)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return 'ANY' if self.kind is object else f'ANY({self.kind.__name__})'


ANY = _Any()


def url(target, action):
    host = config.host
    if ':' in host and not host.startswith('['):
        host = f'[{host}]'
    return f'http://{host}:{config.port}/api/{config.version}/{target}/{action}'


def test(target, action, request_json, status_code, response_json, method='POST', *, token=None, headers=None):
    """POST ``request_json`` to ``/api/<version>/<target>/<action>``, print the
    exchange and assert the status code and the whole response (``ANY``
    matches any value). Returns the ``requests`` response, with ``.ajson``.
    ``token`` is sent as ``Authorization: Bearer`` (``config.token`` when
    not given; ``token=False``: none); ``headers`` are sent as given."""
    address = url(target, action)
    request_json = json.dumps(request_json) if request_json else None
    print(f'{method} {address} {request_json} --> {status_code} {response_json}')
    sent = {'Content-Type': 'application/json'} if request_json is not None else {}
    token = config.get('token') if token is None else token
    if token:
        sent['Authorization'] = f'Bearer {token}'
    sent.update(headers or {})
    response = requests.request(method, address, data=request_json, timeout=60, headers=sent)

    assert response.status_code == status_code, (response.status_code, status_code, response.text)
    response.ajson = Request(response.json())
    assert response.ajson == response_json, (response.text, response_json)
    return response


test.__test__ = False  # not a test for pytest to collect when imported into a test module
