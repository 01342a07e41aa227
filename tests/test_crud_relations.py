"""Relations between generated tables, on SQLite and PostgreSQL through a
real server: a reference to a row that does not exist is a 400 on its field;
``on_delete`` restrict (409 naming what refers), cascade and set null;
``expand`` on read and list (shape, depth, the target's scopes and hidden
columns, one query per field per page, bad names); and references added to
tables made before them (start-up checks the rows, or stops with the
statement or script to run)."""
import contextlib
import os
import sqlite3
import subprocess
import sys

import pytest
import requests

from conftest import PRODUCTS
from test_crud import BACKENDS, NOT_FOUND, field_error, serve, store

PRODUCT = PRODUCTS / 'crudrelations'


@pytest.fixture(scope='module', params=BACKENDS)
def backend(request, tmp_path_factory):
    with store(request.param, tmp_path_factory.mktemp('relations')) as database:
        served = serve(PRODUCT, database.url, '--docs')
        try:
            yield served, database
        finally:
            served.stop()


@pytest.fixture
def server(backend):
    return backend[0]


def post(server, path, data=None, owner=None):
    headers = {'X-Owner': owner} if owner else {}
    return requests.post(f'{server.url}/api/v0/{path}', json=data or {}, headers=headers, timeout=30)


def ok(server, path, data=None, owner=None):
    response = post(server, path, data, owner)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_reference_to_no_row_is_400_on_its_field_and_stores_nothing(backend):
    server, database = backend
    person = ok(server, 'people/create', {'name': 'Ann'})
    project = ok(server, 'projects/create', {'name': 'p', 'lead': person['id']})
    task = ok(server, 'tasks/create', {'title': 't', 'project': project['id'], 'assignee': person['id']})
    tasks, comments = database.count('tasks'), database.count('comments')
    for path, data, field in [
        ('tasks/create', {'title': 'x', 'project': 10 ** 12}, 'project'),
        ('tasks/create', {'title': 'x', 'project': project['id'], 'assignee': 10 ** 12}, 'assignee'),
        ('tasks/create', {'title': 'x', 'parent': 10 ** 12}, 'parent'),
        ('tasks/create', {'title': 'x', 'project': -1}, 'project'),
        ('comments/create', {'text': 'x', 'task': 10 ** 12}, 'task'),
        ('projects/create', {'name': 'x', 'lead': 10 ** 12}, 'lead'),
        ('tasks/update', {'id': task['id'], 'project': 10 ** 12}, 'project'),
        ('tasks/update', {'id': task['id'], 'title': 'y', 'assignee': 10 ** 12}, 'assignee'),
    ]:
        assert field_error(post(server, path, data), field) == \
            f'no row of {dict(project="projects", lead="people", assignee="people").get(field, "tasks")} has this id'
    field_error(post(server, 'tasks/create', {'title': 'x', 'project': 'one'}), 'project')
    assert (database.count('tasks'), database.count('comments')) == (tasks, comments)
    assert ok(server, 'tasks/read', {'id': task['id']}) == task


def test_a_reference_to_a_row_outside_the_targets_scope_is_as_if_none(server):
    alices = ok(server, 'projects/create', {'name': 'a'}, owner='alice')
    assert field_error(post(server, 'tasks/create', {'title': 'x', 'project': alices['id']}, owner='bob'),
                       'project') == 'no row of projects has this id'
    ok(server, 'tasks/create', {'title': 'x', 'project': alices['id']}, owner='alice')


def test_on_delete_restrict_is_409_naming_what_refers(backend):
    server, database = backend
    project = ok(server, 'projects/create', {'name': 'kept'})
    task = ok(server, 'tasks/create', {'title': 't', 'project': project['id']})
    response = post(server, 'projects/delete', {'id': project['id']})
    assert response.status_code == 409, response.text
    assert response.json() == {'error': {
        'field': 'id', 'state': 'referred',
        'explain': 'rows of tasks refer to this row by their project (on_delete restrict): delete them, '
                   'or change their project, first'}}
    assert ok(server, 'projects/read', {'id': project['id']}) == project
    lead = ok(server, 'people/create', {'name': 'Lead'})
    ok(server, 'projects/update', {'id': project['id'], 'lead': lead['id']})
    assert 'rows of projects refer to this row by their lead' in post(
        server, 'people/delete', {'id': lead['id']}).json()['error']['explain']
    ok(server, 'tasks/update', {'id': task['id'], 'project': None})
    assert ok(server, 'projects/delete', {'id': project['id']}) == {}
    response = post(server, 'projects/read', {'id': project['id']})
    assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_on_delete_cascade_deletes_what_refers_all_the_way_down(backend):
    server, database = backend
    top = ok(server, 'tasks/create', {'title': 'top'})
    sub = ok(server, 'tasks/create', {'title': 'sub', 'parent': top['id']})
    subsub = ok(server, 'tasks/create', {'title': 'subsub', 'parent': sub['id']})
    kept = ok(server, 'tasks/create', {'title': 'kept'})
    for task in (top, sub, subsub, kept):
        ok(server, 'comments/create', {'text': f'on {task["title"]}', 'task': task['id']})
    assert ok(server, 'tasks/delete', {'id': top['id']}) == {}
    for task in (top, sub, subsub):
        assert post(server, 'tasks/read', {'id': task['id']}).status_code == 404
        assert ok(server, 'comments/list', {'where': {'task': task['id']}, 'total': True})['meta']['total_objects'] == 0
    assert ok(server, 'comments/list', {'where': {'task': kept['id']}})['data'][0]['text'] == 'on kept'
    assert ok(server, 'tasks/read', {'id': kept['id']}) == kept


def test_on_delete_set_null_nulls_the_reference_as_a_change(server):
    person = ok(server, 'people/create', {'name': 'Bo'})
    assigned = [ok(server, 'tasks/create', {'title': f'a{n}', 'assignee': person['id']}) for n in range(3)]
    other = ok(server, 'people/create', {'name': 'Cy'})
    kept = ok(server, 'tasks/create', {'title': 'k', 'assignee': other['id']})
    assert ok(server, 'people/delete', {'id': person['id']}) == {}
    for task in assigned:
        assert ok(server, 'tasks/read', {'id': task['id']}) == {**task, 'assignee': None, 'version': 2}
    response = post(server, 'tasks/update', {'id': assigned[0]['id'], 'version': 1, 'title': 'stale'})
    assert response.status_code == 409 and response.json()['error']['state'] == 'stale'
    assert ok(server, 'tasks/read', {'id': kept['id']}) == kept


def test_expand_puts_the_row_in_place_of_its_id(server):
    lead = ok(server, 'people/create', {'name': 'Lee'})
    project = ok(server, 'projects/create', {'name': 'expanded', 'lead': lead['id']})
    top = ok(server, 'tasks/create', {'title': 'top', 'project': project['id']})
    task = ok(server, 'tasks/create', {'title': 't', 'project': project['id'], 'parent': top['id'],
                                       'assignee': lead['id']})
    assert set(project) == {'id', 'version', 'name', 'lead'}  # owner is hidden
    assert set(lead) == {'id', 'version', 'name'}  # secret too
    read = ok(server, 'tasks/read', {'id': task['id'], 'expand': ['project', 'assignee', 'parent']})
    assert read == {**task, 'project': project, 'assignee': lead, 'parent': top}
    read = ok(server, 'tasks/read', {'id': task['id'], 'expand': ['project.lead', 'parent.project']})
    assert read == {**task, 'project': {**project, 'lead': lead}, 'parent': {**top, 'project': project}}
    assert ok(server, 'tasks/read', {'id': top['id'], 'expand': ['parent', 'assignee']}) == top  # null stays null
    listed = ok(server, 'tasks/list', {'where': {'project': project['id']}, 'expand': ['project', 'project.lead'],
                               'total': True})
    assert listed['meta']['total_objects'] == 2
    assert listed['data'] == [{**top, 'project': {**project, 'lead': lead}},
                              {**task, 'project': {**project, 'lead': lead}}]
    assert ok(server, 'tasks/list', {'where': {'project': project['id']}, 'expand': []})['data'] == [top, task]
    assert ok(server, 'tasks/list', {'where': {'id': -1}, 'expand': ['project']})['data'] == []


def test_expand_respects_the_targets_scope(server):
    alices = ok(server, 'projects/create', {'name': 'hers'}, owner='alice')
    task = ok(server, 'tasks/create', {'title': 't', 'project': alices['id']}, owner='alice')
    assert ok(server, 'tasks/read', {'id': task['id'], 'expand': ['project']}, owner='alice')['project'] == alices
    assert ok(server, 'tasks/read', {'id': task['id'], 'expand': ['project']}, owner='bob')['project'] is None
    listed = ok(server, 'tasks/list', {'where': {'id': task['id']}, 'expand': ['project']}, owner='bob')
    assert listed['data'] == [{**task, 'project': None}]
    assert ok(server, 'tasks/read', {'id': task['id']}, owner='bob') == task  # tasks are not scoped


@pytest.mark.parametrize('expand, words', [
    (['title'], "'title' is not a reference of tasks that expand may name; these are: project, project.lead, "
                'parent, parent.project, parent.parent, parent.assignee, assignee'),
    (['project.name'], "'project.name' is not a reference"),
    (['project.lead.name'], "'project.lead.name' is not a reference"),
    (['parent.parent.parent'], "'parent.parent.parent' is not a reference"),
    (['id'], "'id' is not a reference"),
    (['project', 'nope'], "'nope' is not a reference"),
    ('project', 'should be a list of the names of references'),
    ([['project']], 'should be a list of the names of references'),
    ({'project': True}, 'should be a list of the names of references'),
])
def test_expand_names_references_only(server, expand, words):
    for path, data in (('tasks/read', {'id': 1, 'expand': expand}), ('tasks/list', {'expand': expand})):
        assert words in field_error(post(server, path, data), 'expand')
    assert 'it has none' in field_error(post(server, 'people/list', {'expand': ['name']}), 'expand')


def test_expand_costs_one_query_per_field_for_a_whole_page(server):
    project = ok(server, 'projects/create', {'name': 'many', 'lead': ok(server, 'people/create', {'name': 'L'})['id']})
    people = [ok(server, 'people/create', {'name': f'p{n}'})['id'] for n in range(20)]
    for n in range(20):
        ok(server, 'tasks/create', {'title': f'many {n}', 'project': project['id'], 'assignee': people[n]})
    where = {'project': project['id']}

    def statements(data):
        before = ok(server, 'statements/count')['statements']
        answer = ok(server, 'tasks/list', data)
        return ok(server, 'statements/count')['statements'] - before, answer
    plain, _ = statements({'where': where, 'page_size': 20})
    expanded, answer = statements({'where': where, 'page_size': 20, 'expand': ['project', 'assignee', 'project.lead']})
    assert expanded - plain == 3
    assert [row['assignee']['name'] for row in answer['data']] == [f'p{n}' for n in range(20)]
    assert all(row['project']['lead']['name'] == 'L' for row in answer['data'])


def test_the_openapi_document_describes_expand(server):
    document = requests.get(f'{server.url}/api/openapi.json', timeout=30)
    schemas = document.json()['components']['schemas']
    assert schemas['tasks.Read']['properties']['expand']['items']['enum'][:2] == ['project', 'project.lead']
    assert 'expand' in schemas['tasks.List']['properties']
    assert 'expand' not in schemas['people.Read']['properties']


# References added to tables made before them

@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    with store(request.param, tmp_path) as found:
        yield found


@contextlib.contextmanager
def served(database, declaration='strict'):
    server = serve(PRODUCT, database.url, RELATIONS_DECLARATION=declaration)
    try:
        yield server
    finally:
        server.stop()


def failed_start(database, declaration='strict'):
    completed = subprocess.run(
        [sys.executable, '-m', 'apiphant', str(PRODUCT), '127.0.0.1:0', '--database-url', database.url],
        env={**os.environ, 'RELATIONS_DECLARATION': declaration}, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1, completed.stderr
    assert 'Traceback' not in completed.stderr
    return completed.stderr.splitlines()[-1]


def foreign_keys(database, table):
    if database.backend == 'sqlite':
        return {(row[3], row[2], row[6]) for row in database.query(f'PRAGMA foreign_key_list({table})')}
    rows = database.query(
        "SELECT a.attname, t.relname, c.confdeltype, c.convalidated FROM pg_constraint c "
        "JOIN pg_class r ON r.oid = c.conrelid JOIN pg_class t ON t.oid = c.confrelid "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        f"WHERE c.contype = 'f' AND r.relname = '{table}' AND r.relnamespace = to_regnamespace(current_schema())")
    assert all(valid for *_, valid in rows)
    return {(column, target, {'r': 'RESTRICT', 'c': 'CASCADE', 'n': 'SET NULL'}[kind]) for column, target, kind, _ in rows}


def test_references_are_added_to_tables_made_before_them(database):
    with served(database, 'loose') as server:
        person = ok(server, 'people/create', {'name': 'P'})
        project = ok(server, 'projects/create', {'name': 'p', 'lead': person['id']})
        task = ok(server, 'tasks/create', {'title': 't', 'project': project['id'], 'assignee': person['id']})
        ok(server, 'comments/create', {'text': 'c', 'task': task['id']})
    assert foreign_keys(database, 'tasks') == set()
    with served(database) as server:
        assert foreign_keys(database, 'tasks') == {('project', 'projects', 'RESTRICT'),
                                                   ('parent', 'tasks', 'CASCADE'),
                                                   ('assignee', 'people', 'SET NULL')}
        assert foreign_keys(database, 'comments') == {('task', 'tasks', 'CASCADE')}
        assert ok(server, 'tasks/read', {'id': task['id'], 'expand': ['project']})['project'] == project
        field_error(post(server, 'tasks/create', {'title': 'x', 'project': 10 ** 9}), 'project')
        assert post(server, 'projects/delete', {'id': project['id']}).status_code == 409
        ok(server, 'tasks/delete', {'id': task['id']})
        assert database.count('comments') == 0


def test_rows_that_refer_to_no_row_stop_start_up_with_the_statement(database):
    with served(database, 'loose') as server:
        ok(server, 'tasks/create', {'title': 't', 'project': 77})
    message = failed_start(database)
    assert ('column project of tasks in Database(' in message and 'now references projects, but 1 rows hold ids that '
            'no row of projects has; change them and start again: they are SELECT * FROM tasks WHERE project IS '
            'NOT NULL AND project NOT IN (SELECT id FROM projects); e.g. UPDATE tasks SET project = NULL WHERE '
            'project IS NOT NULL AND project NOT IN (SELECT id FROM projects)' in message), message
    assert foreign_keys(database, 'tasks') == set()
    database.query('UPDATE tasks SET project = NULL WHERE project IS NOT NULL AND project NOT IN (SELECT id FROM projects)')
    with served(database) as server:
        assert ok(server, 'tasks/list')['data'][0]['project'] is None


def test_a_sqlite_copy_of_a_table_others_refer_to_stops_start_up_with_the_script(database):
    """A new NOT NULL on projects, which tasks refer to: PostgreSQL alters the
    column; SQLite would copy the table, which drops the old one and would
    take the tasks along, so it stops and gives the script."""
    with served(database, 'middle') as server:
        project = ok(server, 'projects/create', {'name': 'p'})
        task = ok(server, 'tasks/create', {'title': 't', 'project': project['id']})
        subtask = ok(server, 'tasks/create', {'title': 's', 'parent': task['id']})
    if database.backend == 'sqlite':
        message = failed_start(database)
        assert 'needs a rule that SQLite adds only by copying the table, and 1 rows of tasks refer to it by project' \
            in message, message
        script = message.partition('start again: ')[2]
        assert script.startswith('PRAGMA foreign_keys = OFF; BEGIN; CREATE TABLE projects__apiphant_copy (')
        assert script.endswith('PRAGMA foreign_key_check; COMMIT;')
        assert database.count('tasks') == 2
        path = database.url.removeprefix('sqlite:///')
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
            connection.executescript(script)
    with served(database) as server:
        assert ok(server, 'tasks/read', {'id': task['id'], 'expand': ['project']})['project'] == project
        assert ok(server, 'tasks/read', {'id': subtask['id']}) == subtask
        field_error(post(server, 'projects/create', {'name': None}), 'name')
        assert ok(server, 'projects/create', {'name': 'q'})['id'] == project['id'] + 1
    assert ('project', 'projects', 'RESTRICT') in foreign_keys(database, 'tasks')


# Declarations refused (in this process, no database)

def declare(product, code):
    """Run ``code`` as a module of ``product``, which links its tables."""
    from apiphant.crud.table import link
    namespace = {'__name__': f'{product}.api.v0.things'}
    exec('from apiphant.crud import Column, Table\n' + code, namespace)
    link(product)
    return namespace


@pytest.mark.parametrize('code, words', [
    ("a = Table('a', b=Column(int, references='b'))", r"a\.b references 'b', but the product p1 declares no table "
                                                      "of that name"),
    ("a = Table('a', b=Column(int, references='b'))\nb = Table('b', a=Column(int, references='a'))",
     'references form a cycle: (a -> b -> a|b -> a -> b); only a table may refer to itself'),
    ("a = Table('a', x=Column(int, references='a'))\nb = Table('a', y=Column(int))\n"
     "c = Table('c', a=Column(int, references='a'))", "declares 2 tables of that name; give the Table itself"),
])
def test_references_that_cannot_be_linked_stop_start_up(code, words):
    from apiphant.crud import SchemaError
    from apiphant.crud.table import _TABLES
    try:
        with pytest.raises(SchemaError, match=words):
            declare('p1', code)
    finally:
        _TABLES.pop('p1', None)


def test_a_table_may_refer_to_itself_and_to_a_table_object():
    found = declare('p2', "a = Table('a', parent=Column(int, references='a', on_delete='cascade'))\n"
                          "b = Table('b', a=Column(int, references=a, on_delete='set null'))")
    a, b = found['a'], found['b']
    assert (a.columns['parent'].target, b.columns['a'].target) == (a, a)
    assert a.expandable() == ('parent', 'parent.parent') and b.expandable() == ('a', 'a.parent')
    assert sorted((table.name, column.name) for table, column in a._referrers) == [('a', 'parent'), ('b', 'a')]


@pytest.mark.parametrize('arguments, words', [
    (dict(kind=str, references='a'), 'holds its ids: Column(int, references=...)'),
    (dict(kind=int, references='a', on_delete='nothing'), "on_delete should be one of 'restrict', 'cascade', "
                                                          "'set null'"),
    (dict(kind=int, references='a', on_delete='set null', required=True), 'may be null'),
    (dict(kind=int, references='a', on_delete='set null', default=1), 'may be null'),
    (dict(kind=int, on_delete='cascade'), 'on_delete is for a column that references a table'),
    (dict(kind=int, references=5), 'references should be a table name or a Table'),
])
def test_bad_references_are_refused_where_declared(arguments, words):
    from apiphant.crud import Column
    kind = arguments.pop('kind')
    with pytest.raises(TypeError, match=words.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')):
        Column(kind, **arguments)
