"""Lists that scale, on SQLite and PostgreSQL through a real server:
``total_objects`` only when asked, ``has_more`` and ``meta.next``, keyset
pages (``after``) in every sort (descending, nulls first or last, ties,
several keys) equal to one long page and to the order worked out here,
tampered cursors are 400s on ``after``, scopes hold on every page, and an
equality where with a sort on an indexed pair reads one index range
(EXPLAIN). And the README's promises: a bulk update through
``update_statement()`` keeps ``version`` honest, ``writable=False`` columns
are set by hooks, ``Database.close()``, ``--routes`` and ``--openapi``
without a database."""
import base64
import datetime
import importlib
import json
import os
import re
import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from conftest import PRODUCTS
from test_crud import BACKENDS, field_error, serve, store

PRODUCT = PRODUCTS / 'crudlists'
DAYS = [None, '2026-01-01', '2026-01-02', '2026-01-03', '2026-01-02']
POINTS = [None, 1.5, -2.0]


@pytest.fixture(scope='module', params=BACKENDS)
def backend(request, tmp_path_factory):
    with store(request.param, tmp_path_factory.mktemp('lists')) as database:
        served = serve(PRODUCT, database.url)
        try:
            yield served, database
        finally:
            served.stop()


@pytest.fixture
def server(backend):
    return backend[0]


def post(server, path, data=None, owner='admin'):
    return requests.post(f'{server.url}/api/v0/{path}', json=data if data is not None else {},
                         headers={'X-Owner': owner}, timeout=30)


def ok(server, path, data=None, owner='admin'):
    response = post(server, path, data, owner)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope='module')
def project(backend):
    """A project of 24 tasks, half alice's, half bob's, with ties and nulls
    in due and points: ``(project id, rows as stored with their owner)``."""
    server, _ = backend
    project = ok(server, 'projects/create', {'name': 'lists'})['id']
    rows = []
    for i in range(24):
        owner = 'alice' if i % 2 else 'bob'
        row = ok(server, 'tasks/create', {'project': project, 'due': DAYS[i % 5], 'points': POINTS[i % 3],
                                          'title': 'abc'[i % 3], 'done': i % 4 == 0}, owner)
        rows.append({**row, 'owner': owner})
    return project, rows


def expected(rows, keys):
    """Ids in the order of ``keys`` (``[(name, descending, nulls_last)]``), ties by id."""
    rows = sorted(rows, key=lambda row: row['id'])
    for name, descending, nulls_last in reversed(keys):
        values = sorted((row for row in rows if row[name] is not None), key=lambda row: row[name],
                        reverse=descending)  # stable, reversed too
        nulls = [row for row in rows if row[name] is None]
        rows = values + nulls if nulls_last else nulls + values
    return [row['id'] for row in rows]


def walk(server, request, owner='admin', page_size=3):
    """Every page by cursor: the ids in order, and the metas."""
    ids, metas = [], []
    listed = ok(server, 'tasks/list', {**request, 'page_size': page_size}, owner)
    while True:
        ids += [row['id'] for row in listed['data']]
        metas.append(listed['meta'])
        if listed['meta']['next'] is None:
            return ids, metas
        listed = ok(server, 'tasks/list', {**request, 'page_size': page_size, 'after': listed['meta']['next']}, owner)


SORTS = [
    ('due', [('due', False, False)]),
    ('-due', [('due', True, True)]),
    ('due nulls last', [('due', False, True)]),
    ('-due nulls first', [('due', True, False)]),
    (['-points', 'due nulls last'], [('points', True, True), ('due', False, True)]),
    (['done', '-due', 'title'], [('done', False, False), ('due', True, True), ('title', False, False)]),
    ('-id', [('id', True, False)]),
    (None, [('id', False, False)]),
]


@pytest.mark.parametrize('sort_by, keys', SORTS, ids=repr)
def test_pages_by_cursor_are_the_order_one_long_page_and_offsets_give(server, project, sort_by, keys):
    key, rows = project
    request = {'where': {'project': key}, 'sort_by': sort_by}
    order = expected(rows, keys)
    long = ok(server, 'tasks/list', {**request, 'page_size': 100})
    assert [row['id'] for row in long['data']] == order
    assert long['meta'] == {'page': 1, 'page_size': 100, 'has_more': False, 'next': None}
    ids, metas = walk(server, request)
    assert ids == order
    assert len(metas) == 8 and all('page' not in meta for meta in metas[1:])
    assert [meta['has_more'] for meta in metas] == [True] * 7 + [False]  # 24 rows: no empty page at the end
    by_offset = [row['id'] for page in range(1, 9)
                 for row in ok(server, 'tasks/list', {**request, 'page': page, 'page_size': 3})['data']]
    assert by_offset == order
    assert walk(server, request, page_size=7)[0] == order


def test_total_objects_only_when_asked(server, project):
    key, rows = project
    where = {'where': {'project': key}, 'page_size': 5}
    assert 'total_objects' not in ok(server, 'tasks/list', where)['meta']
    counted = ok(server, 'tasks/list', {**where, 'total': True})
    assert counted['meta']['total_objects'] == 24 and counted['meta']['has_more'] is True
    assert ok(server, 'tasks/list', {**where, 'total': True}, 'alice')['meta']['total_objects'] == 12
    after = ok(server, 'tasks/list', {**where, 'total': True, 'after': counted['meta']['next']})
    assert after['meta']['total_objects'] == 24  # every matching row, not those after the cursor
    assert 'total_objects' not in ok(server, 'tasks/list', {**where, 'total': False})['meta']
    for value in ('yes', 1, None, [True]):
        field_error(post(server, 'tasks/list', {**where, 'total': value}), 'total')


def test_a_table_that_counts_by_default_and_text_of_no_declared_length(server):
    ranks = [None, 1, 1, 2, None, 3, 2]
    made = [ok(server, 'counted/create', {'text': 'x' * 50_000, 'rank': rank}) for rank in ranks]
    listed = ok(server, 'counted/list', {'page_size': 2})
    assert listed['meta']['total_objects'] == 7
    assert 'total_objects' not in ok(server, 'counted/list', {'total': False})['meta']
    order = expected(made, [('rank', True, True)])
    ids = [row['id'] for row in listed['data']]
    while listed['meta']['next']:
        listed = ok(server, 'counted/list', {'page_size': 2, 'after': listed['meta']['next']})
        ids += [row['id'] for row in listed['data']]
    assert ids == order


def test_cursor_pages_with_expand_of_the_sort_key(server, project):
    key, rows = project
    request = {'where': {'project': key}, 'sort_by': ['project', '-due'], 'expand': ['project']}
    ids, _ = walk(server, request, page_size=5)
    assert ids == expected(rows, [('due', True, True)])
    first = ok(server, 'tasks/list', {**request, 'page_size': 1})['data'][0]
    assert first['project'] == {'id': key, 'version': 1, 'name': 'lists'}


def test_page_and_after_together_is_a_400_and_after_null_is_the_first_page(server, project):
    key, _ = project
    first = ok(server, 'tasks/list', {'where': {'project': key}, 'page_size': 2})
    field_error(post(server, 'tasks/list', {'page': 1, 'after': first['meta']['next']}), 'after')
    field_error(post(server, 'tasks/list', {'page': 2, 'after': first['meta']['next']}), 'after')
    assert ok(server, 'tasks/list', {'where': {'project': key}, 'page_size': 2, 'after': None}) == first
    assert ok(server, 'tasks/list', {'where': {'project': key}, 'page_size': 2, 'page': 1, 'after': None}) == first


def forge(sort, values):
    text = json.dumps([sort, values]).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip('=')


def raw(text):
    return base64.urlsafe_b64encode(text if isinstance(text, bytes) else text.encode()).decode()


TAMPERED = [
    'garbage!!', '', 'a', '====', 123, True, ['x'], {'due': 1}, raw('not json'), raw(b'\xff\xfe'), raw('{}'),
    raw('{"a": 1, "b": 2}'), raw('"ab"'), raw('[1, 2]'), raw('[[], []]'), raw('[' * 100_000 + ']' * 100_000),
    forge(['due nulls first', 'id'], ['2026-01-01']),
    forge(['due nulls first', 'id'], ['2026-01-01', 5, 6]),
    forge(['-due nulls last', 'id'], ['2026-01-01', 5]),  # another sort
    forge(['due', 'id'], ['2026-01-01', 5]),  # the sort as written, not as the cursor says it
    forge(['due nulls first', 'id'], ['yesterday', 5]),
    forge(['due nulls first', 'id'], [20260101, 5]),
    forge(['due nulls first', 'id'], ['2026-01-01', None]),
    forge(['due nulls first', 'id'], ['2026-01-01', 2 ** 70]),
    forge(['due nulls first', 'id'], ['2026-01-01', 1.5]),
    forge(['due nulls first', 'id'], ['2026-01-01', True]),
    forge(['due nulls first', 'id'], ['2026-01-01', '5']),
    forge(['due nulls first', 'id'], [{'$gt': '2026-01-01'}, 5]),
    forge(['due nulls first', 'id'], [['2026-01-01'], 5]),
    raw('[["due nulls first", "id"], ["2026-01-01", 1e400]]'),
    raw('[["due nulls first", "id"], ["2026-01-01", NaN]]'),
    raw('[["-points nulls last", "id"], [Infinity, 1]]'),
    forge(['-points nulls last', 'id'], ['1.5', 1]),
    forge(['title nulls first', 'id'], ['x' * 101, 1]),
    forge(['title nulls first', 'id'], ['a\x00', 1]),
]
OTHER_SORTS = {**dict.fromkeys(TAMPERED[-4:-2], '-points'), **dict.fromkeys(TAMPERED[-2:], 'title')}


@pytest.mark.parametrize('after', TAMPERED, ids=lambda after: repr(after)[:40])
def test_a_tampered_cursor_is_a_400_on_after(server, project, after):
    sort_by = OTHER_SORTS.get(after, 'due') if isinstance(after, str) else 'due'
    field_error(post(server, 'tasks/list', {'sort_by': sort_by, 'after': after}), 'after')


def test_a_cursor_never_reveals_a_row_outside_the_scope(server, project):
    key, rows = project
    alices = [row for row in rows if row['owner'] == 'alice']
    request = {'where': {'project': key}, 'sort_by': ['-points', 'due nulls last']}
    keys = [('points', True, True), ('due', False, True)]
    ids, _ = walk(server, request, 'alice', page_size=2)
    assert ids == expected(alices, keys)
    # The admin's cursors, each just past a row of bob's, given by alice: her rows after it, only hers.
    admin_order = expected(rows, keys)
    listed = ok(server, 'tasks/list', {**request, 'page_size': 1})
    for place in range(len(rows) - 1):
        after = listed['meta']['next']
        if rows[[row['id'] for row in rows].index(admin_order[place])]['owner'] == 'bob':
            seen = ok(server, 'tasks/list', {**request, 'page_size': 100, 'after': after}, 'alice')['data']
            assert [row['id'] for row in seen] == [i for i in admin_order[place + 1:]
                                                    if i in {row['id'] for row in alices}]
        listed = ok(server, 'tasks/list', {**request, 'page_size': 1, 'after': after})
    # A forged cursor before every row: still hers alone, and none of another project.
    first = forge(['-points nulls last', 'due nulls last', 'id'], [1e308, '0001-01-01', 0])
    seen = ok(server, 'tasks/list', {'sort_by': ['-points', 'due nulls last'], 'page_size': 100, 'after': first},
              'alice')['data']
    assert {row['id'] for row in seen} >= {row['id'] for row in alices if row['points'] is not None}
    assert all(row['id'] in {r['id'] for r in alices} or row['project'] != key for row in seen)
    assert ok(server, 'tasks/list', {**request, 'after': first}, 'carol')['data'] == []


def test_nulls_in_sort_by_are_checked(server):
    for sort_by in ('due nulls', 'due nulls middle', 'due NULLS LAST', 'due  nulls last', ['due', '-due nulls last'],
                    'owner nulls last'):
        field_error(post(server, 'tasks/list', {'sort_by': sort_by}), 'sort_by')


# One index range: EXPLAIN of the statements list runs

def table_of_product():
    if str(PRODUCTS) not in sys.path:
        sys.path.insert(0, str(PRODUCTS))
    return importlib.import_module('crudlists.api.v0.tasks').tasks


def plan(database, statement):
    from apiphant.crud.storage import parse_url
    dialect = sa.create_engine(parse_url(database.url)).dialect
    sql = str(statement.compile(dialect=dialect, compile_kwargs={'literal_binds': True}))
    if database.backend == 'sqlite':
        return '\n'.join(row[-1] for row in database.query(f'EXPLAIN QUERY PLAN {sql}'))
    return '\n'.join(row[0] for row in database.query(f'EXPLAIN {sql}'))


def test_an_equality_where_and_a_sort_on_an_indexed_pair_read_one_index_range(backend):
    server, database = backend
    projects = [ok(server, 'projects/create', {'name': f'p{i}'})['id'] for i in range(10)]
    low = min(projects)
    if database.backend == 'sqlite':
        database.query(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
            INSERT INTO tasks (version, project, due, done, owner)
            SELECT 1, {low} + i % 10, CASE WHEN i % 7 = 0 THEN NULL
                   ELSE date('2026-01-01', '+' || (i % 300) || ' days') END, 0, 'carol' FROM n""")
        database.query('ANALYZE')
    else:
        database.query(f"""INSERT INTO tasks (version, project, due, done, owner)
            SELECT 1, {low} + mod(i, 10), CASE WHEN mod(i, 7) = 0 THEN NULL
                   ELSE DATE '2026-01-01' + mod(i, 300) END, false, 'carol' FROM generate_series(1, 5000) i""")
        database.query('ANALYZE tasks')
    tasks = table_of_product()
    index, = [index.name for index in tasks.sql.indexes if [c.name for c in index.columns] == ['project', 'due']]
    c = tasks.sql.c
    from apiphant.crud import query
    for sort_by in ('due', '-due'):
        keys = query.sort_keys(sort_by, tasks._sort_columns, c.id)
        statement = (sa.select(*tasks.visible).where(c.project == low + 3, c.owner == 'carol')
                     .order_by(*(key.clause() for key in keys)).limit(21))
        deep = statement.where(query.after(keys, [datetime.date(2026, 6, 1), 2500])[0])
        for explained in (plan(database, statement), plan(database, deep)):
            if database.backend == 'sqlite':
                assert f'USING INDEX {index} (project=?' in explained, explained
                assert 'TEMP B-TREE FOR ORDER BY' not in explained, explained  # at most its RIGHT PART (ties by id)
            else:
                assert f'Index Scan using {index}' in explained or f'Index Scan Backward using {index}' in explained, \
                    explained
                assert not re.search(r'(^|->)\s*Sort\s+\(', explained, re.M), explained  # Incremental Sort of ties, at most
        if database.backend == 'sqlite':
            assert 'due>?' in plan(database, deep) or 'due<?' in plan(database, deep)  # a range, not a scan
        else:
            assert 'due >=' in plan(database, deep) or 'due <=' in plan(database, deep)
    by_id = sa.select(*tasks.visible).order_by(*(key.clause() for key in tasks._default_keys)).limit(21)
    for explained in (plan(database, by_id), plan(database, by_id.where(query.after(tasks._default_keys, [2500])[0]))):
        assert 'TEMP B-TREE' not in explained and not re.search(r'(^|->)\s*Sort\s+\(', explained, re.M), explained
        assert 'SCAN tasks' in explained or 'PRIMARY KEY' in explained or 'Index Scan using tasks_pkey' in explained
    listed = ok(server, 'tasks/list', {'where': {'project': low + 3}, 'sort_by': 'due', 'page_size': 100}, 'carol')
    assert len(listed['data']) == 100 and listed['meta']['has_more']


# The README's promises

def test_a_bulk_update_of_your_own_keeps_version_honest(server):
    project = ok(server, 'projects/create', {'name': 'bulk'})['id']
    made = [ok(server, 'tasks/create', {'project': project, 'points': points}) for points in (None, 2.0)]
    other = ok(server, 'tasks/create', {'project': ok(server, 'projects/create', {'name': 'x'})['id']})
    assert ok(server, 'tasks/bump', {'project': project}) == {'changed': 2}
    for before in made:
        after = ok(server, 'tasks/read', {'id': before['id']})
        assert after['version'] == before['version'] + 1
        assert after['points'] == (before['points'] or 0) + 1
        stale = post(server, 'tasks/update', {'id': before['id'], 'version': before['version'], 'title': 'x'})
        assert stale.status_code == 409 and stale.json()['error']['state'] == 'stale'
    assert ok(server, 'tasks/read', {'id': other['id']}) == other


def test_writable_false_is_set_by_hooks_and_refused_to_clients_and_table_methods(server):
    project = ok(server, 'projects/create', {'name': 'labels'})['id']
    assert ok(server, 'tasks/create', {'project': project})['label'] == 'new'
    field_error(post(server, 'tasks/create', {'project': project, 'label': 'mine'}), 'label')


def test_table_methods_answer_requests_and_walk_cursors(server, project):
    key, rows = project
    ids = ok(server, 'tasks/mine', {}, 'alice')['ids']
    assert ids == expected([row for row in rows if row['owner'] == 'alice'], [('due', True, True)])


@pytest.mark.parametrize('backend_name', BACKENDS)
def test_database_close_lets_go_of_every_connection(backend_name, tmp_path):
    from apiphant.crud import Database
    with store(backend_name, tmp_path) as database:
        url = database.url
        if backend_name == 'postgresql':
            url += f'&application_name=apiphant_close_{os.getpid()}'
        db = Database(url)
        table = sa.Table('closing', sa.MetaData(), sa.Column('id', sa.Integer, primary_key=True))
        with db.transaction() as connection:
            table.create(connection)
            connection.execute(table.insert(), [{'id': 1}])
        assert db.read_key(sa.select(table.c.id).where(table.c.id == sa.bindparam('_key')), {'_key': 1}) == (1,)
        with db.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 1
        assert opened(backend_name, database, url) > 0
        db.close()
        assert opened(backend_name, database, url) == 0
        with db.connect() as connection:  # used again, it connects again
            assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 1
        db.close()
        assert opened(backend_name, database, url) == 0


def opened(backend_name, database, url):
    """Connections of this process to the database: open files of the
    SQLite file, or backends of PostgreSQL with this application_name."""
    if backend_name == 'sqlite':
        path = os.path.realpath(url.removeprefix('sqlite:///'))
        links = []
        for fd in os.listdir('/proc/self/fd'):
            try:
                links.append(os.readlink(f'/proc/self/fd/{fd}'))
            except OSError:
                pass
        return sum(link.startswith(path) for link in links)
    name = url.rsplit('application_name=', 1)[1]
    return database.query(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'")[0][0]


@pytest.mark.parametrize('option', ['--routes', '--openapi'])
@pytest.mark.parametrize('url', ['postgresql://nobody:secret@127.0.0.1:1/nothing', 'sqlite:////no/such/dir/x.sqlite3'])
def test_routes_and_openapi_touch_no_database(option, url):
    environment = {**os.environ, 'APIPHANT_DATABASE_URL': url, 'PYTHONPATH': str(PRODUCTS)}
    done = subprocess.run([sys.executable, '-m', 'apiphant', 'crudlists', option], env=environment,
                          capture_output=True, text=True, timeout=60, cwd=str(PRODUCTS))
    assert done.returncode == 0, done.stderr
    assert '/api/v0/tasks/list' in done.stdout
    assert 'secret' not in done.stdout + done.stderr
