"""The example product the README serves, tested as a user of apiphant would:
with the pytest plugin's ``apiphant_server`` and 0.2's ``test()``."""
import pytest

from apiphant.test import ANY, config, test


@pytest.fixture(autouse=True)
def served(apiphant_server):
    return apiphant_server


def test_echo(capsys):
    response = test('echo', 'read', {"hello": "world"}, 200, {"hello": "world", "server": "myproduct"})
    assert response.ajson.server == 'myproduct'
    assert capsys.readouterr().out == (
        f'POST http://127.0.0.1:{config.port}/api/v0/echo/read {{"hello": "world"}} --> 200 '
        "{'hello': 'world', 'server': 'myproduct'}\n")


def test_echo_empty():
    test('echo', 'read', None, 200, {"server": "myproduct"})


def test_tasks_with_any():
    created = test('tasks', 'create', {'title': 'write docs', 'due': '2026-12-01'}, 200,
                   {'id': ANY(int), 'title': 'write docs', 'priority': 'normal', 'estimate': 1, 'due': '2026-12-01'})
    test('tasks', 'read', {'id': created.ajson.id}, 200, created.json())
    test('tasks', 'read', {'id': 10 ** 9}, 404, {'error': '404 Not Found'})


@pytest.mark.parametrize('request_json, error', [
    ({}, {'field': 'title', 'state': 'missing'}),
    ({'title': ''}, {'field': 'title', 'state': 'invalid', 'explain': 'should not be empty'}),
    ({'title': 'x' * 201}, {'field': 'title', 'state': 'invalid', 'explain': 'should be at most 200 characters long'}),
    ({'title': 5}, {'field': 'title', 'state': 'invalid', 'explain': 'should be a string'}),
    ({'title': 'x', 'priority': 'urgent'},
     {'field': 'priority', 'state': 'invalid', 'explain': "should be one of 'low', 'normal', 'high'"}),
    ({'title': 'x', 'estimate': True}, {'field': 'estimate', 'state': 'invalid', 'explain': 'should be an integer'}),
    ({'title': 'x', 'estimate': 0}, {'field': 'estimate', 'state': 'invalid', 'explain': 'should be from 1 to 100'}),
    ({'title': 'x', 'estimate': 101}, {'field': 'estimate', 'state': 'invalid', 'explain': 'should be from 1 to 100'}),
    ({'title': 'x', 'due': 'tomorrow'}, {'field': 'due', 'state': 'invalid', 'explain': 'YYYY-MM-DD'}),
])
def test_tasks_validation(request_json, error):
    test('tasks', 'create', request_json, 400, {'error': error})


def test_tasks_read_needs_an_int_id():
    invalid = {'error': {'field': 'id', 'state': 'invalid', 'explain': 'should be an integer'}}
    test('tasks', 'read', {'id': '1'}, 400, invalid)
    test('tasks', 'read', {'id': True}, 400, invalid)


def test_nested_target_and_custom_action():
    test('users/sessions', 'create', {'login': 'alice', 'password': 'wonderland'}, 200,
         {'login': 'alice', 'request_id': ANY(str)})
    test('users/sessions', 'create', {'login': 'alice', 'password': 'wrong'}, 401,
         {'error': 'wrong login or password'})
    test('users/sessions', 'create', {'login': 'bob', 'password': 'é'}, 401, {'error': 'wrong login or password'})
    test('users/sessions', 'whoami', {}, 200, {'client': '127.0.0.1', 'user_agent': ANY(str)})


def test_the_helper_asserts():
    with pytest.raises(AssertionError):
        test('echo', 'read', {"hello": "world"}, 201, {"hello": "world", "server": "myproduct"})
    with pytest.raises(AssertionError):
        test('echo', 'read', {"hello": "world"}, 200, {"hello": "world"})
    with pytest.raises(AssertionError):
        test('echo', 'read', {"hello": "world"}, 200, {"hello": ANY(int), "server": "myproduct"})


def test_method_argument():
    test('echo', 'read', None, 405, {'error': '405 Method Not Allowed'}, method='GET')


def test_any():
    assert ANY == 1 and ANY == None and ANY == {'a': 1}  # noqa: E711
    assert ANY(int) == 5 and ANY(int) != '5' and ANY(int) != True  # noqa: E712
    assert {'id': 7, 'at': '2026'} == {'id': ANY(int), 'at': ANY(str)}
    assert [{'id': 1}] == [{'id': ANY}]
    assert repr(ANY) == 'ANY' and repr(ANY(int)) == 'ANY(int)'
