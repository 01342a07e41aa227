"""The contract of generated CRUD, run against SQLite and against PostgreSQL:
every action, every operator, bad input and injection, through a real server.

PostgreSQL is 127.0.0.1:5432, user postgres, database test: each run works in
a schema of its own, dropped after. Where it cannot be reached the tests skip
(and fail in CI, APIPHANT_REQUIRE_SERVICES=1)."""
import contextlib
import datetime
import os
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS, skip_or_fail
from test_crud_query import BAD_WHERES

PRODUCT = PRODUCTS / 'crudproduct'
POSTGRESQL = 'postgresql://postgres@127.0.0.1:5432/test'
BACKENDS = ['sqlite', 'postgresql']
NOT_FOUND = {'error': '404 Not Found'}


class Store:
    """A database for one server: its URL and a way to look inside it
    without apiphant."""

    def __init__(self, backend, url, query):
        self.backend, self.url, self.query = backend, url, query

    def count(self, table):
        return self.query(f'SELECT count(*) FROM {table}')[0][0]

    def tables(self):
        if self.backend == 'sqlite':
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.query('SELECT table_name FROM information_schema.tables '
                              'WHERE table_schema = current_schema()')
        return {name for name, in rows}


@contextlib.contextmanager
def store(backend, directory):
    """A fresh database: a SQLite file in ``directory``, or a PostgreSQL schema."""
    if backend == 'sqlite':
        path = directory / f'crud-{uuid.uuid4().hex[:8]}.sqlite3'

        def query(sql):
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
                return connection.execute(sql).fetchall()
        yield Store(backend, f'sqlite:///{path}', query)
        return
    import psycopg
    try:
        admin = psycopg.connect(POSTGRESQL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        skip_or_fail(f'PostgreSQL is not reachable at {POSTGRESQL}: {" ".join(str(error).split())}')
    schema = f'crud_{os.getpid()}_{uuid.uuid4().hex[:8]}'
    try:
        admin.execute(f'CREATE SCHEMA {schema}')

        def query(sql):
            with admin.transaction():
                admin.execute(f'SET LOCAL search_path TO {schema}')
                cursor = admin.execute(sql)
                return cursor.fetchall() if cursor.description else []
        yield Store(backend, f'{POSTGRESQL}?options=-csearch_path%3D{schema}', query)
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS {schema} CASCADE')
        admin.close()


def serve(product, url, *args, **env):
    return ServedProduct(product, *args, env={'APIPHANT_DATABASE_URL': url, **env}).start()


@pytest.fixture(scope='module', params=BACKENDS)
def backend(request, tmp_path_factory):
    """The product served over one backend, for the module: (server, store)."""
    with store(request.param, tmp_path_factory.mktemp('crud')) as database:
        server = serve(PRODUCT, database.url)
        try:
            yield server, database
        finally:
            server.stop()


@pytest.fixture
def server(backend):
    return backend[0]


@pytest.fixture
def batch():
    return uuid.uuid4().hex[:12]


def post(server, path, data=None):
    return requests.post(f'{server.url}/api/v0/{path}', json=data, timeout=30)


def ok(server, path, data=None):
    response = post(server, path, data)
    assert response.status_code == 200, response.text
    return response.json()


def field_error(response, field, state='invalid'):
    assert response.status_code == 400, response.text
    error = response.json()['error']
    assert (error['field'], error['state']) == (field, state), error
    return error.get('explain')


def when(text):
    return datetime.datetime.fromisoformat(text)


# create

def test_create_answers_the_stored_row(server):
    before = datetime.datetime.now(datetime.timezone.utc)
    row = ok(server, 'tasks/create', {'title': 'write tests'})
    assert set(row) == {'id', 'version', 'title', 'is_completed', 'spent_time', 'created_at'}
    assert type(row['id']) is int and row['version'] == 1
    assert (row['title'], row['is_completed'], row['spent_time']) == ('write tests', False, 0)
    created = when(row['created_at'])
    assert created.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(seconds=5) < created < before + datetime.timedelta(seconds=5)
    assert ok(server, 'tasks/read', {'id': row['id']}) == row


def test_ids_are_never_given_again(server):
    first = ok(server, 'tasks/create', {'title': 'a'})
    ok(server, 'tasks/delete', {'id': first['id']})
    assert ok(server, 'tasks/create', {'title': 'b'})['id'] > first['id']


def test_every_kind_round_trips(server, batch):
    given = {'batch': batch, 'name': 'Ünïcode ✓', 'count': 2 ** 63 - 1, 'price': 0.1, 'is_active': False,
             'color': 'green', 'order': -2 ** 63, 'day': '2026-02-28', 'seen_at': '2026-11-22T05:04:05.123456+02:00'}
    row = ok(server, 'items/create', given)
    expected = {**given, 'seen_at': '2026-11-22T03:04:05.123456+00:00'}
    assert {key: row[key] for key in given} == expected
    assert ok(server, 'items/read', {'id': row['id']}) == row
    assert ok(server, 'items/create', {'batch': batch, 'price': 1})['price'] == 1.0


def test_optional_columns_are_null_and_defaults_apply(server, batch):
    row = ok(server, 'items/create', {'batch': batch})
    assert (row['name'], row['price'], row['color'], row['day'], row['seen_at']) == (None,) * 5
    assert (row['count'], row['is_active']) == (0, True)
    assert ok(server, 'items/create', {'batch': batch, 'name': None})['name'] is None


@pytest.mark.parametrize('data, field, state', [
    ({}, 'title', 'missing'),
    ({'title': None}, 'title', 'invalid'),
    ({'title': 'x' * 201}, 'title', 'invalid'),
    ({'title': 5}, 'title', 'invalid'),
    ({'title': ['x']}, 'title', 'invalid'),
    ({'title': 'a\x00b'}, 'title', 'invalid'),
    ({'title': 'x', 'is_completed': 'true'}, 'is_completed', 'invalid'),
    ({'title': 'x', 'is_completed': 1}, 'is_completed', 'invalid'),
    ({'title': 'x', 'is_completed': None}, 'is_completed', 'invalid'),
    ({'title': 'x', 'spent_time': True}, 'spent_time', 'invalid'),
    ({'title': 'x', 'spent_time': 1.5}, 'spent_time', 'invalid'),
    ({'title': 'x', 'spent_time': '5'}, 'spent_time', 'invalid'),
    ({'title': 'x', 'spent_time': 2 ** 63}, 'spent_time', 'invalid'),
    ({'title': 'x', 'spent_time': -2 ** 63 - 1}, 'spent_time', 'invalid'),
    ({'title': 'x', 'spent_time': 10 ** 30}, 'spent_time', 'invalid'),
    ({'title': 'x', 'created_at': '2026-11-22T00:00:00Z'}, 'created_at', 'invalid'),
    ({'title': 'x', 'id': 7}, 'id', 'invalid'),
    ({'title': 'x', 'version': 7}, 'version', 'invalid'),
    ({'title': 'x', 'owner': 'me'}, 'owner', 'invalid'),
    ({'title': 'x', 'title; DROP TABLE tasks': 1}, 'title; DROP TABLE tasks', 'invalid'),
], ids=repr)
def test_create_rejects_bad_fields(server, backend, data, field, state):
    _, database = backend
    before = database.count('tasks')
    field_error(post(server, 'tasks/create', data), field, state)
    assert database.count('tasks') == before


@pytest.mark.parametrize('data, field', [
    ({'color': 'purple'}, 'color'), ({'price': '1'}, 'price'), ({'price': 'NaN'}, 'price'),
    ({'price': True}, 'price'), ({'day': '2026-13-01'}, 'day'), ({'day': 20260101}, 'day'),
    ({'seen_at': 'yesterday'}, 'seen_at'), ({'seen_at': '2026-11-22T03:04:05+25:00'}, 'seen_at'),
    ({'batch': 'x' * 41}, 'batch'), ({'is_active': None}, 'is_active'),
], ids=repr)
def test_create_rejects_bad_values_of_every_kind(server, batch, data, field):
    field_error(post(server, 'items/create', {'batch': batch, **data}), field)
    assert ok(server, 'items/list', {'where': {'batch': batch}, 'total': True})['meta']['total_objects'] == 0


@pytest.mark.parametrize('body', [b'[1]', b'"x"', b'{"title": NaN}', b'{"title": 1e400}'])
def test_create_of_no_object_is_the_protocols_400(server, body):
    response = requests.post(f'{server.url}/api/v0/tasks/create', data=body, timeout=10,
                             headers={'Content-Type': 'application/json'})
    assert (response.status_code, response.json()) == (400, {'error': 'Request content should be JSON Object'})


# read

def test_read_a_missing_row_is_404(server):
    response = post(server, 'tasks/read', {'id': 2 ** 63 - 1})
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert post(server, 'tasks/read', {'id': -1}).status_code == 404


@pytest.mark.parametrize('data, field, state', [
    ({}, 'id', 'missing'), ({'id': '1'}, 'id', 'invalid'), ({'id': True}, 'id', 'invalid'),
    ({'id': 1.5}, 'id', 'invalid'), ({'id': 2.0 ** 60}, 'id', 'invalid'), ({'id': None}, 'id', 'invalid'),
    ({'id': 2 ** 64}, 'id', 'invalid'),
    ({'id': 1, 'title': 'x'}, 'title', 'invalid'), ({'id': [1]}, 'id', 'invalid'),
], ids=repr)
def test_read_rejects_bad_ids(server, data, field, state):
    field_error(post(server, 'tasks/read', data), field, state)


def test_a_whole_float_is_an_integer(server):
    """100.0 is an integer to JSON Schema and to JavaScript: taken as 100,
    while a float holds it exactly."""
    created = ok(server, 'tasks/create', {'title': 'whole', 'spent_time': 100.0})
    assert created['spent_time'] == 100 and type(created['spent_time']) is int
    assert ok(server, 'tasks/read', {'id': float(created['id'])})['id'] == created['id']


# update

def test_update_is_partial_and_counts_versions(server):
    row = ok(server, 'tasks/create', {'title': 'draft', 'spent_time': 3})
    updated = ok(server, 'tasks/update', {'id': row['id'], 'is_completed': True})
    assert updated == {**row, 'is_completed': True, 'version': 2}
    again = ok(server, 'tasks/update', {'id': row['id'], 'version': 2, 'title': 'final', 'spent_time': 0})
    assert again == {**updated, 'title': 'final', 'spent_time': 0, 'version': 3}
    assert ok(server, 'tasks/read', {'id': row['id']}) == again


def test_update_of_nothing_changes_nothing(server):
    row = ok(server, 'tasks/create', {'title': 'same'})
    assert ok(server, 'tasks/update', {'id': row['id']}) == row
    assert ok(server, 'tasks/update', {'id': row['id'], 'version': 1}) == row


def test_stale_version_is_409_and_changes_nothing(server):
    row = ok(server, 'tasks/create', {'title': 'shared'})
    ok(server, 'tasks/update', {'id': row['id'], 'version': 1, 'title': 'mine'})
    response = post(server, 'tasks/update', {'id': row['id'], 'version': 1, 'title': 'theirs'})
    assert response.status_code == 409
    assert response.json()['error']['field'] == 'version'
    assert response.json()['error']['state'] == 'stale'
    assert ok(server, 'tasks/read', {'id': row['id']})['title'] == 'mine'
    assert post(server, 'tasks/delete', {'id': row['id'], 'version': 1}).status_code == 409
    assert ok(server, 'tasks/read', {'id': row['id']})['version'] == 2


def test_update_of_a_missing_row_is_404(server):
    response = post(server, 'tasks/update', {'id': 2 ** 63 - 1, 'title': 'x'})
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize('data, field, state', [
    ({'title': 'x'}, 'id', 'missing'), ({'id': 'x'}, 'id', 'invalid'),
    ({'id': 1, 'version': '1'}, 'version', 'invalid'), ({'id': 1, 'version': True}, 'version', 'invalid'),
    ({'id': 1, 'title': None}, 'title', 'invalid'), ({'id': 1, 'title': 'x' * 201}, 'title', 'invalid'),
    ({'id': 1, 'created_at': '2026-01-01'}, 'created_at', 'invalid'), ({'id': 1, 'nothing': 1}, 'nothing', 'invalid'),
    ({'id': 1, 'spent_time': 2 ** 63}, 'spent_time', 'invalid'),
], ids=repr)
def test_update_rejects_bad_fields(server, data, field, state):
    row = ok(server, 'tasks/create', {'title': 'keep'})
    if data.get('id') == 1:
        data = {**data, 'id': row['id']}
    field_error(post(server, 'tasks/update', data), field, state)
    assert ok(server, 'tasks/read', {'id': row['id']}) == row


# delete

def test_delete(server):
    row = ok(server, 'tasks/create', {'title': 'gone'})
    assert ok(server, 'tasks/delete', {'id': row['id'], 'version': 1}) == {}
    assert post(server, 'tasks/read', {'id': row['id']}).json() == NOT_FOUND
    response = post(server, 'tasks/delete', {'id': row['id']})
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    field_error(post(server, 'tasks/delete', {}), 'id', 'missing')
    field_error(post(server, 'tasks/delete', {'id': 1, 'title': 'x'}), 'title')


# list

@pytest.fixture
def fruits(server, batch):
    """Five items of one batch, whose names say which matched."""
    rows = [
        {'name': 'apple', 'count': 1, 'price': 1.5, 'is_active': True, 'color': 'red', 'order': 3,
         'day': '2026-01-01', 'seen_at': '2026-01-01T10:00:00Z'},
        {'name': 'Banana', 'count': 2, 'price': 2.5, 'is_active': False, 'color': 'green', 'order': 2,
         'day': '2026-02-01'},
        {'name': 'cherry', 'count': 3, 'is_active': True, 'order': 1, 'seen_at': '2026-03-01T10:00:00Z'},
        {'count': 0, 'price': 0.0, 'is_active': False, 'color': 'blue'},
        {'name': '50%_off', 'count': 4, 'price': 9.0, 'color': 'red', 'secret': 'hush'},
    ]
    return [ok(server, 'items/create', {'batch': batch, **row}) for row in rows]


def names(server, batch, where, **more):
    answer = ok(server, 'items/list', {'where': {'$and': [{'batch': batch}, where]}, 'page_size': 100, **more})
    return [row['name'] for row in answer['data']]


ALL = {'apple', 'Banana', 'cherry', None, '50%_off'}
OPERATOR_CASES = [
    ({'name': 'apple'}, {'apple'}),
    ({'name': None}, {None}),
    ({'count': {'$eq': 2}}, {'Banana'}),
    ({'color': {'$eq': None}}, {'cherry'}),
    ({'color': {'$ne': 'red'}}, {'Banana', 'cherry', None}),
    ({'name': {'$ne': None}}, ALL - {None}),
    ({'count': {'$lt': 2}}, {'apple', None}),
    ({'count': {'$le': 2}}, {'apple', 'Banana', None}),
    ({'count': {'$gt': 2}}, {'cherry', '50%_off'}),
    ({'count': {'$ge': 2}}, {'Banana', 'cherry', '50%_off'}),
    ({'price': {'$lt': 2}}, {'apple', None}),
    ({'price': {'$gt': 1}}, {'apple', 'Banana', '50%_off'}),
    ({'count': {'$gt': 0, '$lt': 3}}, {'apple', 'Banana'}),
    ({'color': {'$in': ['red', 'blue']}}, {'apple', None, '50%_off'}),
    ({'color': {'$in': []}}, set()),
    ({'color': {'$nin': ['red', 'blue']}}, {'Banana', 'cherry'}),
    ({'price': {'$exists': True}}, ALL - {'cherry'}),
    ({'price': {'$exists': False}}, {'cherry'}),
    ({'name': {'$like': '%an%'}}, {'Banana'}),
    ({'name': {'$like': 'b%'}}, set()),
    ({'name': {'$like': 'B_nana'}}, {'Banana'}),
    ({'name': {'$like': '50\\%\\_%'}}, {'50%_off'}),
    ({'name': {'$like': '%\\_%'}}, {'50%_off'}),
    ({'name': {'$ilike': 'b%'}}, {'Banana'}),
    ({'name': {'$ilike': 'APPLE'}}, {'apple'}),
    ({'name': {'$contains': 'an'}}, {'Banana'}),
    ({'name': {'$contains': 'AN'}}, set()),
    ({'name': {'$contains': '%'}}, {'50%_off'}),
    ({'name': {'$contains': '_'}}, {'50%_off'}),
    ({'name': {'$icontains': 'AN'}}, {'Banana'}),
    ({'name': {'$icontains': 'ERR'}}, {'cherry'}),
    ({'is_active': True}, {'apple', 'cherry', '50%_off'}),
    ({'$or': [{'color': 'green'}, {'count': 3}]}, {'Banana', 'cherry'}),
    ({'$and': [{'is_active': True}, {'color': 'red'}]}, {'apple', '50%_off'}),
    ({'$not': {'color': 'red'}}, {'Banana', 'cherry', None}),
    ({'$not': {'$or': [{'color': 'red'}, {'price': {'$gt': 2}}]}}, {'cherry', None}),
    ({'price': {'$not': {'$gt': 1}}}, {'cherry', None}),
    ({'name': {'$not': {'$like': '%e%'}}}, {'Banana', None, '50%_off'}),
    ({'day': {'$ge': '2026-02-01'}}, {'Banana'}),
    ({'day': '2026-01-01'}, {'apple'}),
    ({'seen_at': {'$gt': '2026-01-01T11:00:00+02:00'}}, {'apple', 'cherry'}),
    ({'seen_at': {'$lt': '2026-01-01T10:00:00.000001Z'}}, {'apple'}),
    ({'order': {'$ge': 2}}, {'apple', 'Banana'}),
]


@pytest.mark.parametrize('where, expected', OPERATOR_CASES, ids=[repr(w) for w, _ in OPERATOR_CASES])
def test_where(server, batch, fruits, where, expected):
    found = names(server, batch, where)
    assert len(found) == len(set(found))
    assert set(found) == expected


def test_where_by_id(server, batch, fruits):
    ids = [row['id'] for row in fruits[:2]]
    assert set(names(server, batch, {'id': {'$in': ids}})) == {'apple', 'Banana'}


def test_values_are_bound_not_spliced(server, batch):
    hostile = "x'; DROP TABLE items; --"
    row = ok(server, 'items/create', {'batch': batch, 'name': hostile})
    assert ok(server, 'items/read', {'id': row['id']})['name'] == hostile
    assert names(server, batch, {'name': hostile}) == [hostile]
    assert names(server, batch, {'name': {'$like': "x'%"}}) == [hostile]


def test_list_meta_and_pages(server, batch, fruits):
    where = {'batch': batch}
    first = ok(server, 'items/list', {'where': where, 'page_size': 2, 'total': True})
    assert isinstance(first['meta']['next'], str)
    assert first['meta'] == {'page': 1, 'page_size': 2, 'total_objects': 5, 'has_more': True,
                             'next': first['meta']['next']}
    assert [row['id'] for row in first['data']] == [row['id'] for row in fruits[:2]]
    last = ok(server, 'items/list', {'where': where, 'page_size': 2, 'page': 3, 'total': True})
    assert last['meta'] == {'page': 3, 'page_size': 2, 'total_objects': 5, 'has_more': False, 'next': None}
    assert [row['id'] for row in last['data']] == [fruits[4]['id']]
    beyond = ok(server, 'items/list', {'where': where, 'page_size': 2, 'page': 4})
    assert beyond == {'meta': {'page': 4, 'page_size': 2, 'has_more': False, 'next': None}, 'data': []}
    assert ok(server, 'items/list', {'where': where})['meta']['page_size'] == 20


def test_list_rows_are_the_rows(server, batch, fruits):
    listed = ok(server, 'items/list', {'where': {'batch': batch}})['data']
    assert listed == fruits
    assert all('secret' not in row for row in listed)


# Text order is the database's collation (bytes in SQLite, the locale's in
# PostgreSQL): sorting by name leaves out the one capitalised name.
LOWER = {'name': {'$ne': 'Banana'}}


@pytest.mark.parametrize('sort_by, where, expected', [
    ('name', LOWER, [None, '50%_off', 'apple', 'cherry']),
    ('-name', LOWER, ['cherry', 'apple', '50%_off', None]),
    ('price', {}, ['cherry', None, 'apple', 'Banana', '50%_off']),
    ('-price', {}, ['50%_off', 'Banana', 'apple', None, 'cherry']),
    (['color', '-count'], {}, ['cherry', None, 'Banana', '50%_off', 'apple']),
    (['is_active', 'count'], {}, [None, 'Banana', 'apple', 'cherry', '50%_off']),
    ('-id', {}, ['50%_off', None, 'cherry', 'Banana', 'apple']),
    ('order', {}, [None, '50%_off', 'cherry', 'Banana', 'apple']),  # two nulls: by id
], ids=repr)
def test_sort(server, batch, fruits, sort_by, where, expected):
    assert names(server, batch, where, sort_by=sort_by) == expected


@pytest.mark.parametrize('data, field', [
    ({'page_size': 0}, 'page_size'), ({'page_size': 101}, 'page_size'), ({'page_size': '5'}, 'page_size'),
    ({'page': 0}, 'page'), ({'page': 2 ** 63}, 'page'), ({'sort_by': 'secret'}, 'sort_by'),
    ({'sort_by': '-id; --'}, 'sort_by'), ({'sort_by': 'name; DROP TABLE items'}, 'sort_by'),
    ({'sort_by': 'name desc'}, 'sort_by'), ({'sort_by': ['-id', '-id']}, 'sort_by'),
    ({'where': []}, 'where'), ({'filter': {}}, 'filter'), ({'where; DROP TABLE items': {}}, 'where; DROP TABLE items'),
], ids=repr)
def test_list_rejects_bad_requests(server, data, field):
    field_error(post(server, 'items/list', data), field)


# 10 ** 400 is not even JSON that the protocol accepts.
SENDABLE = [(why, where) for why, where in BAD_WHERES if why != 'huge float for a float']


@pytest.mark.parametrize('why, where', SENDABLE, ids=[why for why, _ in SENDABLE])
def test_bad_where_is_400_never_500(server, why, where):
    for action in ('list', 'group', 'stats', 'sample'):
        data = {'where': where, **({'field': 'color'} if action == 'group' else
                                   {'fields': ['count']} if action == 'stats' else {})}
        field_error(post(server, f'items/{action}', data), 'where')


def test_injection_leaves_the_tables_intact(server, backend, batch, fruits):
    _, database = backend
    tables, rows = database.tables(), database.count('items')
    attempts = [
        ('items/create', {'batch': batch, 'name; DROP TABLE items': 'x'}),
        ('items/list', {'where': {'name; DROP TABLE items': 1}}),
        ('items/list', {'where': {'$where': '1=1; DROP TABLE items'}}),
        ('items/list', {'where': {'name': {'$where': 'DROP TABLE items'}}}),
        ('items/list', {'sort_by': '-id; --'}),
        ('items/list', {'sort_by': 'name; DROP TABLE items'}),
        ('items/group', {'field': 'color; DROP TABLE items'}),
        ('items/stats', {'fields': ['count); DROP TABLE items; --']}),
        ('items/update', {'id': fruits[0]['id'], 'name = name; DROP TABLE items; --': 1}),
    ]
    for path, data in attempts:
        assert post(server, path, data).status_code == 400, (path, data)
    assert database.tables() == tables
    assert database.count('items') == rows
    assert ok(server, 'items/list', {'where': {'batch': batch}})['data'] == fruits


# group, stats, sample: opted in by items, absent from tasks

def test_group(server, batch, fruits):
    answer = ok(server, 'items/group', {'field': 'color', 'where': {'batch': batch}})
    assert answer == {'data': [{'value': 'red', 'count': 2}, {'value': None, 'count': 1},
                               {'value': 'blue', 'count': 1}, {'value': 'green', 'count': 1}]}
    answer = ok(server, 'items/group', {'field': 'is_active', 'where': {'batch': batch, 'count': {'$gt': 0}}})
    assert answer == {'data': [{'value': True, 'count': 3}, {'value': False, 'count': 1}]}
    assert ok(server, 'items/group', {'field': 'color', 'where': {'batch': batch}, 'page_size': 1}) == {
        'data': [{'value': 'red', 'count': 2}]}
    assert ok(server, 'items/group', {'field': 'day', 'where': {'batch': batch, 'day': {'$exists': True}}}) == {
        'data': [{'value': '2026-01-01', 'count': 1}, {'value': '2026-02-01', 'count': 1}]}


@pytest.mark.parametrize('data, field, state', [
    ({}, 'field', 'missing'), ({'field': 'secret'}, 'field', 'invalid'), ({'field': 'id'}, 'field', 'invalid'),
    ({'field': 'nothing'}, 'field', 'invalid'), ({'field': ['color']}, 'field', 'invalid'),
    ({'field': 'color', 'page_size': 0}, 'page_size', 'invalid'), ({'field': 'color', 'sort_by': 'x'}, 'sort_by', 'invalid'),
], ids=repr)
def test_group_rejects_bad_requests(server, data, field, state):
    field_error(post(server, 'items/group', data), field, state)


def test_stats(server, batch, fruits):
    answer = ok(server, 'items/stats', {'fields': ['count', 'price'], 'where': {'batch': batch}})
    assert answer == {'count': {'min': 0, 'max': 4, 'avg': 2.0},
                      'price': {'min': 0.0, 'max': 9.0, 'avg': 3.25}}
    assert type(answer['count']['min']) is int
    empty = ok(server, 'items/stats', {'fields': ['count'], 'where': {'batch': batch, 'count': 99}})
    assert empty == {'count': {'min': None, 'max': None, 'avg': None}}


@pytest.mark.parametrize('data, field, state', [
    ({}, 'fields', 'missing'), ({'fields': []}, 'fields', 'invalid'), ({'fields': 'count'}, 'fields', 'invalid'),
    ({'fields': ['name']}, 'fields', 'invalid'), ({'fields': ['secret']}, 'fields', 'invalid'),
    ({'fields': ['count', 'count']}, 'fields', 'invalid'), ({'fields': [{'count': 1}]}, 'fields', 'invalid'),
    ({'fields': ['count'], 'page': 1}, 'page', 'invalid'),
], ids=repr)
def test_stats_rejects_bad_requests(server, data, field, state):
    field_error(post(server, 'items/stats', data), field, state)


def test_sample(server, batch, fruits):
    ids = {row['id'] for row in fruits}
    seen = set()
    for _ in range(10):
        data = ok(server, 'items/sample', {'page_size': 3, 'where': {'batch': batch}})['data']
        assert len(data) == 3 and len({row['id'] for row in data}) == 3
        assert {row['id'] for row in data} <= ids
        assert all('secret' not in row for row in data)
        seen.add(tuple(row['id'] for row in data))
    assert len(seen) > 1  # 60 orders of 3 among 5: ten alike would be a fixed order
    assert len(ok(server, 'items/sample', {'where': {'batch': batch, 'color': 'red'}})['data']) == 2
    field_error(post(server, 'items/sample', {'page_size': 101}), 'page_size')


@pytest.mark.parametrize('path', ['tasks/group', 'tasks/stats', 'tasks/sample', 'events/create',
                                  'events/read', 'tasks/drop', 'tasks/table', 'tasks/apiphant_actions'])
def test_only_the_declared_actions_route(server, path):
    assert post(server, path, {}).json() == NOT_FOUND


# hidden columns, hooks, a create defined by the product, transactions

def test_hidden_columns_never_leave_the_server(server, batch):
    row = ok(server, 'items/create', {'batch': batch, 'secret': 'hush'})
    assert 'secret' not in row
    assert 'secret' not in ok(server, 'items/read', {'id': row['id']})
    assert 'secret' not in ok(server, 'items/update', {'id': row['id'], 'secret': 'new'})
    assert b'hush' not in post(server, 'items/list', {'where': {'batch': batch}}).content
    assert b'new' not in post(server, 'items/sample', {'where': {'batch': batch}}).content
    field_error(post(server, 'items/list', {'where': {'secret': 'new'}}), 'where')


def events_of(server, note_id):
    return [row['kind'] for row in ok(server, 'events/list', {'where': {'note_id': note_id}})['data']]


def test_hooks_run_in_the_write_transaction(server):
    note = ok(server, 'notes/create', {'text': 'three little words'})
    assert note['words'] == 3 and note['extended'] is True  # before_create, then the module's create
    assert note['seen_by_hook'] == 'server' and 'owner' not in note  # after_create saw the hidden owner
    updated = ok(server, 'notes/update', {'id': note['id'], 'text': 'two words'})
    assert (updated['words'], updated['version']) == (2, 2)
    assert ok(server, 'notes/delete', {'id': note['id']}) == {}
    assert events_of(server, note['id']) == ['create', 'update', 'delete']


def test_a_hook_that_raises_rolls_everything_back(server, backend):
    _, database = backend
    notes, events = database.count('notes'), database.count('events')
    assert post(server, 'notes/create', {'text': 'forbidden'}).json() == {'error': 'not that text'}
    assert post(server, 'notes/create', {'text': 'fail after'}).status_code == 403
    assert (database.count('notes'), database.count('events')) == (notes, events)
    locked = ok(server, 'notes/create', {'text': 'locked'})
    assert post(server, 'notes/update', {'id': locked['id'], 'text': 'x'}).json() == {'error': 'locked'}
    pinned = ok(server, 'notes/create', {'text': 'pinned'})
    assert post(server, 'notes/delete', {'id': pinned['id']}).json() == {'error': 'pinned'}
    assert ok(server, 'notes/read', {'id': locked['id']})['text'] == 'locked'
    assert ok(server, 'notes/read', {'id': pinned['id']})['version'] == 1
    assert events_of(server, locked['id']) == ['create']


def test_versions_are_checked_before_the_hooks_too(server):
    note = ok(server, 'notes/create', {'text': 'one'})
    ok(server, 'notes/update', {'id': note['id'], 'version': 1, 'text': 'one two'})
    assert post(server, 'notes/update', {'id': note['id'], 'version': 1, 'text': 'x'}).status_code == 409
    assert post(server, 'notes/delete', {'id': note['id'], 'version': 1}).status_code == 409
    assert post(server, 'notes/update', {'id': 2 ** 63 - 1, 'text': 'x'}).json() == NOT_FOUND
    assert ok(server, 'notes/delete', {'id': note['id'], 'version': 2}) == {}
    assert events_of(server, note['id']) == ['create', 'update', 'delete']


def test_a_products_transaction_is_all_or_nothing(server, batch):
    answer = ok(server, 'custom/pair', {'batch': batch})
    listed = ok(server, 'items/list', {'where': {'batch': batch}})['data']
    assert [row['id'] for row in listed] == answer['ids']
    assert listed[0]['count'] == 2  # the raw statement saw both rows of its transaction
    other = batch[::-1]
    assert post(server, 'custom/pair', {'batch': other, 'fail': True}).json() == {'error': 'rolled back'}
    assert ok(server, 'items/list', {'where': {'batch': other}, 'total': True})['meta']['total_objects'] == 0


# Every field error of every table method, as (method, request, field, state).
FIELD_ERRORS = [
    ('create', {}, 'batch', 'missing'), ('create', {'batch': 'b', 'count': 'x'}, 'count', 'invalid'),
    ('create', {'batch': 'b', 'created_at': '2026-01-01T00:00:00Z'}, 'created_at', 'invalid'),
    ('create', {'batch': 'b', 'nothing': 1}, 'nothing', 'invalid'), ('create', {'batch': 'b', 'id': 1}, 'id', 'invalid'),
    ('read', {}, 'id', 'missing'), ('read', {'id': 'x'}, 'id', 'invalid'), ('read', {'id': 1, 'x': 1}, 'x', 'invalid'),
    ('update', {'id': 1, 'version': True}, 'version', 'invalid'), ('update', {'id': 1, 'color': 'pink'}, 'color', 'invalid'),
    ('delete', {'version': 1}, 'id', 'missing'), ('delete', {'id': None}, 'id', 'invalid'),
    ('list', {'where': {'nothing': 1}}, 'where', 'invalid'), ('list', {'where': {'count': {'$like': 'x'}}}, 'where', 'invalid'),
    ('list', {'sort_by': 'secret'}, 'sort_by', 'invalid'), ('list', {'page': 0}, 'page', 'invalid'),
    ('list', {'page_size': 101}, 'page_size', 'invalid'), ('list', {'fields': []}, 'fields', 'invalid'),
    ('group', {}, 'field', 'missing'), ('group', {'field': 'secret'}, 'field', 'invalid'),
    ('group', {'field': 'color', 'where': []}, 'where', 'invalid'),
    ('stats', {}, 'fields', 'missing'), ('stats', {'fields': ['name']}, 'fields', 'invalid'),
    ('sample', {'page_size': 0}, 'page_size', 'invalid'), ('sample', {'where': {'$where': 1}}, 'where', 'invalid'),
]


@pytest.mark.parametrize('method, data, field, state', FIELD_ERRORS, ids=repr)
def test_a_product_catches_the_field_errors_of_table_methods(server, method, data, field, state):
    """The errors a product's own code catches around ``items.create(request)``
    are ``Invalid`` and ``Missing``, with the body the generated route answers."""
    answer = ok(server, 'custom/attempt', {'method': method, 'request': data})
    assert answer['caught'] == state.capitalize(), answer
    assert (answer['error']['field'], answer['error']['state']) == (field, state)
    assert answer['error'] == post(server, f'items/{method}', data).json()['error']
    assert state == 'missing' or answer['error']['explain']


def test_the_readmes_own_actions(server):
    first, second = (ok(server, 'tasks/create', {'title': title}) for title in ('one', 'two'))
    missing = post(server, 'tasks/complete', {'ids': [first['id'], 2 ** 63 - 1]})
    assert missing.json() == NOT_FOUND
    assert ok(server, 'tasks/read', {'id': first['id']}) == first  # all or none
    done = ok(server, 'tasks/complete', {'ids': [first['id'], second['id']]})['data']
    assert [row['is_completed'] for row in done] == [True, True]
    completed = ok(server, 'tasks/list', {'where': {'is_completed': True}, 'total': True})['meta']['total_objects']
    assert ok(server, 'tasks/purge') == {'deleted': completed}
    assert post(server, 'tasks/read', {'id': second['id']}).json() == NOT_FOUND


# Hardening (issue 11): hidden columns, the size of an answer, values the
# database refuses, read-then-update under concurrency.

@pytest.mark.parametrize('action', ['create', 'update'])
def test_a_hidden_column_is_not_client_writable_unless_said(server, backend, batch, action):
    _, database = backend
    row = ok(server, 'items/create', {'batch': batch, 'secret': 'hush'})  # writable=True says so
    data = {'batch': batch, 'internal': 'x'} if action == 'create' else {'id': row['id'], 'internal': 'x'}
    assert field_error(post(server, f'items/{action}', data), 'internal') == 'not writable'
    assert database.query(f"SELECT secret, internal FROM items WHERE batch = '{batch}'") == [('hush', None)]


def test_text_columns_have_a_default_max_length(server, batch):
    ok(server, 'docs/create', {'batch': batch, 'summary': 'x' * 65536})
    assert 'at most 65536' in field_error(post(server, 'docs/create', {'batch': batch, 'summary': 'x' * 65537}),
                                          'summary')
    assert len(ok(server, 'docs/create', {'batch': batch, 'body': 'x' * 100_000})['body']) == 100_000  # max_length=None


def test_an_answer_past_its_text_budget_says_how_many_rows_fit(server, batch):
    where = {'batch': batch}  # 12 characters in each row, and 3,000 of body: 3 rows fit in 10,000
    for i in range(5):
        ok(server, 'docs/create', {'batch': batch, 'body': f'{i}' * 3000})
    assert 'at most 3 of these rows fit' in field_error(
        post(server, 'docs/list', {'where': where, 'page_size': 5}), 'page_size')
    assert len(ok(server, 'docs/list', {'where': where, 'page_size': 3})['data']) == 3
    assert len(ok(server, 'docs/list', {'where': where, 'page_size': 3, 'page': 2})['data']) == 2
    field_error(post(server, 'docs/sample', {'where': where, 'page_size': 5}), 'page_size')
    assert len(ok(server, 'docs/sample', {'where': where, 'page_size': 3})['data']) == 3
    field_error(post(server, 'docs/group', {'field': 'body', 'where': where}), 'page_size')
    assert len(ok(server, 'docs/group', {'field': 'body', 'where': where, 'page_size': 3})['data']) == 3
    for i in range(5):  # summary has a max_length: counted once fetched
        ok(server, 'docs/create', {'batch': batch, 'summary': f'{i}' * 3000})
    field_error(post(server, 'docs/group', {'field': 'summary', 'where': where}), 'page_size')
    assert len(ok(server, 'docs/group', {'field': 'summary', 'where': where, 'page_size': 4})['data']) == 4
    huge = ok(server, 'docs/create', {'batch': batch, 'body': 'y' * 10_001})
    assert 'read it by id' in field_error(post(server, 'docs/list', {'where': {'id': huge['id']}}), 'page_size')
    assert ok(server, 'docs/read', {'id': huge['id']})['body'] == 'y' * 10_001


def test_a_pattern_may_end_with_an_escaped_backslash(server, batch):
    ok(server, 'items/create', {'batch': batch, 'name': 'C:\\'})
    ok(server, 'items/create', {'batch': batch, 'name': 'C:'})
    assert names(server, batch, {'name': {'$like': 'C:\\\\'}}) == ['C:\\']
    assert names(server, batch, {'name': {'$ilike': 'c:\\\\'}}) == ['C:\\']
    for operator in ('$like', '$ilike'):
        assert 'escape' in field_error(post(server, 'items/list', {'where': {'name': {operator: 'C:\\'}}}), 'where')


def test_stats_of_huge_floats_never_overflow(server, batch):
    where = {'batch': batch}
    for price in (1e308, 1e308):
        ok(server, 'items/create', {'batch': batch, 'price': price})
    answer = ok(server, 'items/stats', {'fields': ['price', 'count'], 'where': where})
    assert answer['price'] == {'min': 1e308, 'max': 1e308, 'avg': pytest.approx(1e308, rel=1e-12)}
    ok(server, 'items/create', {'batch': batch, 'price': -1.7e308})
    answer = ok(server, 'items/stats', {'fields': ['price'], 'where': where})
    assert answer['price'] == {'min': -1.7e308, 'max': 1e308, 'avg': pytest.approx(0.3e308 / 3, rel=1e-9)}


def test_read_then_update_in_a_transaction_loses_no_increment(server, batch):
    """2,000 increments from 20 clients, read by read or by list: 2,000."""
    row = ok(server, 'items/create', {'batch': batch})

    def increments(client):
        session, statuses = requests.Session(), []
        for _ in range(100):
            response = session.post(f'{server.url}/api/v0/custom/increment', timeout=60,
                                    json={'id': row['id'], 'via': 'list' if client % 2 else 'read'})
            statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(20) as pool:
        statuses = [status for client in pool.map(increments, range(20)) for status in client]
    assert statuses == [200] * 2000
    final = ok(server, 'items/read', {'id': row['id']})
    assert (final['count'], final['version']) == (2000, 2001)
