"""Row scopes, on SQLite and PostgreSQL through a real server: a table's
``scope`` hides every row it does not match from read, list, group, stats
and sample (nothing counts or samples a row a list would not show), an
update or delete of such a row is a 404 that changes nothing, and the
table's methods called from the product's own code are scoped too."""
import pytest
import requests

from conftest import PRODUCTS
from test_crud import BACKENDS, NOT_FOUND, serve, store

PRODUCT = PRODUCTS / 'crudscoped'


@pytest.fixture(scope='module', params=BACKENDS)
def server(request, tmp_path_factory):
    with store(request.param, tmp_path_factory.mktemp('scoped')) as database:
        served = serve(PRODUCT, database.url)
        try:
            yield served
        finally:
            served.stop()


def post(server, owner, path, data=None):
    return requests.post(f'{server.url}/api/v0/notes/{path}', json=data or {}, headers={'X-Owner': owner},
                         timeout=30)


def ok(server, owner, path, data=None):
    response = post(server, owner, path, data)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope='module')
def rows(server):
    made = {owner: [ok(server, owner, 'create', {'text': f'{owner} {n}', 'size': size})
                    for n, size in enumerate(sizes)]
            for owner, sizes in (('alice', (1, 2, 3)), ('bob', (10, 20)))}
    return made


def test_list_and_read_see_only_the_scope(server, rows):
    listed = ok(server, 'alice', 'list', {'total': True})
    assert listed['meta']['total_objects'] == 3
    assert [row['text'] for row in listed['data']] == ['alice 0', 'alice 1', 'alice 2']
    assert ok(server, 'alice', 'list', {'where': {'size': {'$gt': 2}}, 'total': True})['meta']['total_objects'] == 1
    assert ok(server, 'admin', 'list', {'total': True})['meta']['total_objects'] == 5
    alices = rows['alice'][0]
    assert ok(server, 'alice', 'read', {'id': alices['id']}) == alices
    response = post(server, 'bob', 'read', {'id': alices['id']})
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert ok(server, 'carol', 'list', {'total': True})['meta']['total_objects'] == 0


def test_nothing_counts_or_samples_a_row_the_list_would_not_show(server, rows):
    groups = ok(server, 'bob', 'group', {'field': 'text'})['data']
    assert sorted(groups, key=lambda group: group['value']) == [
        {'value': 'bob 0', 'count': 1}, {'value': 'bob 1', 'count': 1}]
    stats = ok(server, 'bob', 'stats', {'fields': ['size']})['size']
    assert (stats['min'], stats['max'], stats['avg']) == (10, 20, 15)
    for _ in range(5):
        sampled = ok(server, 'bob', 'sample', {'page_size': 5})['data']
        assert sorted(row['text'] for row in sampled) == ['bob 0', 'bob 1']
    assert ok(server, 'carol', 'stats', {'fields': ['size']})['size']['max'] is None


def test_update_and_delete_outside_the_scope_are_404_and_change_nothing(server, rows):
    alices = rows['alice'][1]
    for path, data in (('update', {'id': alices['id'], 'text': 'taken over'}),
                       ('update', {'id': alices['id'], 'version': 99, 'text': 'stale'}),
                       ('update', {'id': alices['id']}),
                       ('delete', {'id': alices['id']}),
                       ('delete', {'id': alices['id'], 'version': 99})):
        response = post(server, 'bob', path, data)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), (path, data, response.text)
    assert ok(server, 'alice', 'read', {'id': alices['id']}) == alices
    assert ok(server, 'alice', 'update', {'id': alices['id'], 'size': 5})['version'] == 2


def test_the_tables_methods_called_by_the_product_are_scoped(server, rows):
    response = requests.post(f'{server.url}/api/v0/notes/mine', json={}, headers={'X-Owner': 'bob'}, timeout=30)
    assert response.json() == {'total': 2, 'texts': ['bob 0', 'bob 1'], 'read': None}
    response = requests.post(f'{server.url}/api/v0/notes/mine', json={'id': rows['alice'][0]['id']},
                             headers={'X-Owner': 'bob'}, timeout=30)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
