"""Access and row rules of generated tables, on SQLite and PostgreSQL through
a real server, named by the OWASP API Security Top 10 (2023):

- API1 Broken Object Level Authorization: another user's row is 404 on
  read, update and delete, absent from list and not counted by group, stats
  or sample;
- API3 Broken Object Property Level Authorization: the owner and other
  non-writable columns cannot be set by clients;
- API5 Broken Function Level Authorization: role-gated generated actions
  are 403 for other callers, those opted in later too.
"""
import pytest
import requests

from apiphant.crud import Column, Table
from conftest import PRODUCTS
from test_crud import BACKENDS, NOT_FOUND, serve, store

PRODUCT = PRODUCTS / 'teamtasks'
ALICE, BOB, CAROL = 101, 102, 103


@pytest.fixture(scope='module', params=BACKENDS)
def served(request, tmp_path_factory):
    with store(request.param, tmp_path_factory.mktemp('rules')) as database:
        server = serve(PRODUCT, database.url)
        try:
            yield server, database
        finally:
            server.stop()


@pytest.fixture(scope='module')
def server(served):
    return served[0]


def post(server, path, data=None, user=None, roles=()):
    headers = {} if user is None else {'Authorization': f'Bearer {server.token(user, roles)}'}
    return requests.post(f'{server.url}/api/v0/{path}', json=data or {}, headers=headers, timeout=30)


def ok(server, path, data=None, user=None, roles=()):
    response = post(server, path, data, user, roles)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope='module')
def rows(server):
    return {
        'alice_private': ok(server, 'tasks/create', {'title': 'alice private', 'points': 5}, ALICE),
        'alice_shared': ok(server, 'tasks/create', {'title': 'alice shared', 'points': 7, 'shared': True}, ALICE),
        'bob_private': ok(server, 'tasks/create', {'title': 'bob private', 'points': 11}, BOB),
    }


def test_create_stamps_the_owner_from_the_token(server, rows):
    assert rows['alice_private']['owner_id'] == ALICE
    assert rows['bob_private']['owner_id'] == BOB


def test_api1_another_users_row_is_absent_from_list(server, rows):
    listed = ok(server, 'tasks/list', {'page_size': 100, 'total': True}, BOB)
    assert sorted(row['title'] for row in listed['data']) == ['alice shared', 'bob private']
    assert listed['meta']['total_objects'] == 2
    where = ok(server, 'tasks/list', {'where': {'title': 'alice private'}, 'total': True}, BOB)
    assert where['meta']['total_objects'] == 0 and where['data'] == []
    assert ok(server, 'tasks/list', {'total': True}, CAROL)['meta']['total_objects'] == 1  # the shared one


def test_api1_another_users_row_is_404_on_read_update_and_delete(server, rows):
    private = rows['alice_private']
    for path, data in (('tasks/read', {'id': private['id']}),
                       ('tasks/update', {'id': private['id'], 'title': 'taken over'}),
                       ('tasks/delete', {'id': private['id']})):
        answer = post(server, path, data, BOB, ['member'])
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND), path
    assert ok(server, 'tasks/read', {'id': private['id']}, ALICE) == private  # unchanged, still there


def test_api1_a_shared_row_is_read_by_others_but_changed_by_its_owner_only(server, rows):
    shared = rows['alice_shared']
    assert ok(server, 'tasks/read', {'id': shared['id']}, BOB) == shared
    assert post(server, 'tasks/update', {'id': shared['id'], 'title': 'mine now'}, BOB).status_code == 404
    assert post(server, 'tasks/delete', {'id': shared['id']}, BOB, ['member']).status_code == 404
    assert ok(server, 'tasks/read', {'id': shared['id']}, ALICE)['title'] == 'alice shared'


def test_api1_group_stats_and_sample_count_no_row_the_list_would_not_show(server, rows):
    groups = ok(server, 'tasks/group', {'field': 'title'}, BOB)['data']
    assert sorted(group['value'] for group in groups) == ['alice shared', 'bob private']
    stats = ok(server, 'tasks/stats', {'fields': ['points']}, BOB)
    assert (stats['points']['min'], stats['points']['max']) == (7, 11)
    for _ in range(5):
        sample = ok(server, 'tasks/sample', {'page_size': 10}, BOB)['data']
        assert 'alice private' not in [row['title'] for row in sample]
    assert ok(server, 'tasks/stats', {'fields': ['points']}, CAROL)['points']['max'] == 7


def test_api1_the_tables_methods_in_the_products_code_hold_the_rules(server, rows):
    assert ok(server, 'tasks/mine', {}, BOB) == {'total': 2, 'titles': ['alice shared', 'bob private']}
    assert ok(server, 'tasks/count', {}) == {'total': 0}  # anonymous: rules naming $auth.id fail closed
    assert ok(server, 'tasks/count', {}, BOB) == {'total': 2}


def test_a_bypass_role_sees_every_row(server, rows):
    assert ok(server, 'tasks/list', {'page_size': 100, 'total': True}, CAROL, ['admin'])['meta']['total_objects'] >= 3
    assert ok(server, 'tasks/read', {'id': rows['bob_private']['id']}, CAROL, ['admin'])['title'] == 'bob private'


def test_the_owner_deletes_their_row_when_their_role_allows(server):
    row = ok(server, 'tasks/create', {'title': 'short-lived'}, BOB)
    answer = post(server, 'tasks/delete', {'id': row['id']}, BOB)
    assert (answer.status_code, answer.json()) == (403, {'error': '403 Forbidden'})  # no member role
    assert ok(server, 'tasks/delete', {'id': row['id']}, BOB, ['member']) == {}
    assert post(server, 'tasks/read', {'id': row['id']}, BOB).status_code == 404


def test_the_create_rule_refuses_a_row_outside_it_and_stores_nothing(server, rows):
    before = ok(server, 'tasks/list', {'total': True}, CAROL, ['admin'])['meta']['total_objects']
    answer = post(server, 'tasks/create', {'title': 'too big', 'points': 101}, BOB)
    assert answer.status_code == 400
    assert answer.json()['error']['field'] == 'rules'
    assert ok(server, 'tasks/list', {'total': True}, CAROL, ['admin'])['meta']['total_objects'] == before


def test_api3_clients_cannot_set_the_owner_or_other_unwritable_fields(server, rows):
    for data in ({'title': 'forged', 'owner_id': ALICE}, {'title': 'forged', 'id': 1}, {'title': 'x', 'version': 9}):
        answer = post(server, 'tasks/create', data, BOB)
        assert answer.status_code == 400, data
    answer = post(server, 'tasks/update', {'id': rows['bob_private']['id'], 'owner_id': ALICE}, BOB)
    assert answer.status_code == 400 and answer.json()['error']['field'] == 'owner_id'
    assert ok(server, 'tasks/read', {'id': rows['bob_private']['id']}, BOB)['owner_id'] == BOB


def test_an_owner_alone_is_the_rule_and_the_id_fits_a_text_column(server):
    note = ok(server, 'notes/create', {'text': 'carol writes'}, CAROL)
    assert note['author'] == str(CAROL)
    assert ok(server, 'notes/list', {'total': True}, CAROL)['meta']['total_objects'] == 1
    assert ok(server, 'notes/list', {'total': True}, BOB)['meta']['total_objects'] == 0
    assert ok(server, 'notes/group', {'field': 'text'}, BOB)['data'] == []
    assert post(server, 'notes/read', {'id': note['id']}, BOB).status_code == 404


def test_api5_role_gated_generated_actions_are_403_for_others_those_opted_in_too(server):
    for path in ('reports/list', 'reports/create', 'reports/group'):
        assert post(server, path, {'field': 'body'} if 'group' in path else {}).status_code == 401, path
        assert post(server, path, {'field': 'body'} if 'group' in path else {}, BOB, ['member']).status_code == 403
    assert ok(server, 'reports/create', {'body': 'q3'}, CAROL, ['admin'])['body'] == 'q3'
    assert ok(server, 'reports/group', {'field': 'body'}, CAROL, ['admin'])['data'] == [{'value': 'q3', 'count': 1}]


def test_access_per_generated_action_and_secure_by_default_for_the_others(server):
    assert post(server, 'bulletins/list').status_code == 200
    assert post(server, 'bulletins/create', {'text': 'hi'}).status_code == 401
    made = ok(server, 'bulletins/create', {'text': 'hi'}, BOB)
    assert ok(server, 'bulletins/read', {'id': made['id']}) == made
    assert post(server, 'bulletins/delete', {'id': made['id']}).status_code == 401


def test_routes_show_each_generated_actions_access():
    import subprocess
    import sys
    listing = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCT), '--routes'], capture_output=True,
                             text=True, timeout=60, check=True).stdout
    lines = {line.split()[0]: line + ' ' for line in listing.splitlines()[1:]}
    assert ' role admin or member ' in lines['/api/v0/tasks/delete']
    assert ' authenticated ' in lines['/api/v0/tasks/list']
    assert ' role admin ' in lines['/api/v0/reports/group']
    assert ' anyone ' in lines['/api/v0/bulletins/list'] and ' authenticated ' in lines['/api/v0/bulletins/create']


@pytest.mark.parametrize('options, message', [
    ({'rules': {'list': {'nope': '$auth.id'}}}, 'unknown field'),
    ({'rules': {'list': {'who': '$auth.nickname'}}}, 'not a value of the caller'),
    ({'rules': {'view': {}}}, 'rules are for'),
    ({'owner': 'missing'}, 'should name a column'),
    ({'owner': 'title'}, 'writable=False'),
    ({'access': {'purge': None}}, 'not among its actions'),
    ({'access': 'everyone'}, 'access should be'),
])
def test_rules_that_cannot_hold_stop_the_declaration(options, message):
    with pytest.raises(ValueError, match=message):
        Table('checked', title=Column(str), who=Column(int, writable=False), **options)
