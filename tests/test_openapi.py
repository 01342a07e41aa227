"""The OpenAPI document agrees with the server: it validates, names every
route, its request schemas accept what the server accepts and refuse what it
refuses, every status it documents can be provoked, and schemathesis finds
nothing against the example product."""
import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from apiphant.dispatch import app
from apiphant.product import locate
from apiphant.pytest_plugin import ServedProduct
from apiphant.routing import discover
from conftest import PRODUCTS, ROOT

EXAMPLE = ROOT / 'examples' / 'myproduct'
# The products with routes, and what their actions need to start.
DESCRIBED = {'myproduct': EXAMPLE, 'proto': PRODUCTS / 'proto', 'crudproduct': PRODUCTS / 'crudproduct',
             'crudmigrate': PRODUCTS / 'crudmigrate'}
BUILT_IN = {'/health', '/metrics', '/api/openapi.json', '/docs'}
OPTIONAL = {'/api/client.js'}  # served when its setting is on


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """Each product served once for the module (tables in a SQLite file of their own)."""
    servers = {}

    def serve(name, *args):
        key = (name, args)
        if key not in servers:
            database = tmp_path_factory.mktemp(name) / 'tables.db'
            servers[key] = ServedProduct(DESCRIBED[name], '--access-log', 'off', *args,
                                         env={'APIPHANT_DATABASE_URL': f'sqlite:///{database}'}).start()
        return servers[key]
    yield serve
    for server in servers.values():
        server.stop()


def fetch_document(server):
    answer = requests.get(server.url + '/api/openapi.json', timeout=10)
    assert answer.status_code == 200 and answer.headers['Content-Type'] == 'application/json'
    return answer.json()


def validator(document, schema):
    """A JSON Schema validator of ``schema``, whose $refs point into ``document``
    (its components ride along as an unknown keyword of the root)."""
    return Draft202012Validator({'components': document['components'], **schema})


def operations(document):
    for path, methods in document['paths'].items():
        for method, operation in methods.items():
            yield path, method, operation


def body_schema(operation):
    content = operation.get('requestBody', {}).get('content', {}).get('application/json')
    return content


def resolved(document, schema):
    while '$ref' in schema:
        schema = document['components']['schemas'][schema['$ref'].rsplit('/', 1)[1]]
    return schema


def post(server, path, body, **headers):
    return requests.post(server.url + path, data=body if isinstance(body, bytes) else json.dumps(body),
                         headers={'Content-Type': 'application/json', **headers}, timeout=10)


@pytest.mark.parametrize('name', DESCRIBED)
def test_the_document_validates_and_names_every_route(served, name):
    document = fetch_document(served(name))
    validate(document)
    assert document['openapi'] == '3.1.0'
    routes = discover(locate(str(DESCRIBED[name])))
    assert set(routes) | BUILT_IN <= set(document['paths']) <= set(routes) | BUILT_IN | OPTIONAL
    ids = [operation['operationId'] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    for path, method, operation in operations(document):
        if path in routes and not (routes[path].raw_environ or routes[path].raw_response):
            version, target = path.split('/')[2], '/'.join(path.split('/')[3:-1])
            assert method == 'post' and operation['tags'] == [f'{version}/{target}']
            assert '400' in operation['responses'] and '415' in operation['responses']
        for answer in operation['responses'].values():
            if '$ref' in answer:
                answer = document['components']['responses'][answer['$ref'].rsplit('/', 1)[1]]
            assert answer['description']


def derived_operations():
    """(product, path) of every operation whose request schema says what it
    takes (field() calls or a table): the others take any object."""
    found = []
    for name in DESCRIBED:
        document = _document_in_process(name)
        for path, method, operation in operations(document):
            content = body_schema(operation)
            if content and 'example' in content and resolved(document, content['schema']).get('properties'):
                found.append((name, path))
    return found


def _document_in_process(name):
    from apiphant import openapi
    application = app(str(DESCRIBED[name]), start=False)
    return openapi.document(application, DESCRIBED[name].name)


def _wrong_value(schema, document):
    """A value ``schema`` refuses, of a JSON type it does not allow (or outside its enum)."""
    schema = resolved(document, schema)
    kinds = set()
    for option in schema.get('anyOf', [schema]):
        option = resolved(document, option)
        kind = option.get('type', ())
        kinds |= {kind} if isinstance(kind, str) else set(kind)
    if 'enum' in schema or 'const' in schema or not kinds:
        return {'not': ['one', 'of', 'them']} if 'object' not in kinds else None
    for candidate, kind in (({'an': 'object'}, 'object'), ('a string', 'string'), ([1], 'array'), (1.5, 'number')):
        if kind not in kinds:
            return candidate
    return None


@pytest.mark.parametrize('name, path', derived_operations())
def test_the_request_schema_agrees_with_the_server(served, name, path):
    """The documented example is accepted (no 400), the answer fits the
    documented schema; each required field left out is a 400 ``missing`` on
    it, each field of a wrong type a 400 on it, and an unknown field of a
    closed object a 400 on it."""
    server = served(name)
    document = fetch_document(server)
    operation = document['paths'][path]['post']
    content = body_schema(operation)
    schema, example = resolved(document, content['schema']), content['example']
    assert validator(document, content['schema']).is_valid(example)
    answer = post(server, path, example)
    assert str(answer.status_code) in operation['responses'], answer.text
    assert answer.status_code != 400, answer.text
    documented = operation['responses'][str(answer.status_code)]
    if '$ref' in documented:
        documented = document['components']['responses'][documented['$ref'].rsplit('/', 1)[1]]
    errors = list(validator(document, documented['content']['application/json']['schema']).iter_errors(answer.json()))
    assert not errors, (answer.json(), errors[0].message)
    for field in schema.get('required', ()):
        answer = post(server, path, {key: value for key, value in example.items() if key != field})
        assert answer.status_code == 400 and answer.json()['error']['field'] == field
        assert answer.json()['error']['state'] == 'missing'
    for field, property_schema in schema['properties'].items():
        wrong = _wrong_value(property_schema, document)
        if wrong is None:
            continue
        assert not validator(document, content['schema']).is_valid({**example, field: wrong})
        answer = post(server, path, {**example, field: wrong})
        assert answer.status_code == 400, (field, wrong, answer.text)
        assert answer.json()['error']['field'] == field, (field, wrong, answer.text)
    if schema.get('additionalProperties') is False:
        answer = post(server, path, {**example, 'no_such_field': 1})
        assert answer.status_code == 400 and answer.json()['error']['field'] == 'no_such_field'


def test_generated_tables_are_described_exactly(served):
    document = fetch_document(served('crudproduct'))
    schemas = document['components']['schemas']
    row, create = schemas['items.Row'], schemas['items.Create']
    assert 'secret' not in row['properties'] and 'internal' not in row['properties']  # hidden: never answered
    assert create['properties']['secret']['writeOnly'] and 'internal' not in create['properties']
    assert row['properties']['created_at']['readOnly'] and 'created_at' not in create['properties']
    assert create['required'] == ['batch'] and create['additionalProperties'] is False
    assert create['properties']['batch'] == {'type': 'string', 'pattern': '^[^\\x00]*$', 'maxLength': 40}
    assert create['properties']['color']['anyOf'][0]['enum'] == ['red', 'green', 'blue']
    assert create['properties']['day']['anyOf'][0]['format'] == 'date'
    assert create['properties']['seen_at']['anyOf'][0]['format'] == 'date-time'
    assert create['properties']['count']['default'] == 0
    # The where language: operators per kind, $not within a field, $and/$or/$not around.
    where = schemas['items.Where']
    assert {'$and', '$or', '$not', 'id', 'batch', 'price'} <= set(where['properties'])
    assert 'secret' not in where['properties']
    text, flag = schemas['items.Where.name']['properties'], schemas['items.Where.is_active']['properties']
    assert {'$like', '$ilike', '$contains', '$icontains', '$in', '$lt', '$not'} <= set(text)
    assert '$like' not in flag and '$lt' not in flag and '$exists' in flag
    assert text['$in']['maxItems'] == 100
    page = document['paths']['/api/v0/items/list']['post']['responses']['200']['content']['application/json']
    assert page['schema']['properties']['meta']['required'] == ['page_size', 'has_more', 'next']
    assert set(document['paths']['/api/v0/items/update']['post']['responses']) >= {'404', '409', '503'}
    # A module's own create that calls the generated one is described as it.
    notes = document['paths']['/api/v0/notes/create']['post']
    assert notes['requestBody']['content']['application/json']['schema'] == {'$ref': '#/components/schemas/notes.Create'}


def test_where_documented_is_where_the_server_takes(served):
    """Wheres and sorts the schema accepts are 200s, and those it refuses are 400s on that field."""
    server = served('crudproduct')
    document = fetch_document(server)
    check = validator(document, {'$ref': '#/components/schemas/items.List'})
    good = [{'where': {'name': {'$like': 'a%', '$not': {'$eq': 'ab'}}, '$or': [{'count': {'$ge': 1}}, {'day': None}]}},
            {'where': {'seen_at': {'$lt': '2026-01-02T03:04:05Z'}, 'color': {'$in': ['red', 'blue']}}},
            {'where': {'$not': {'is_active': True}}, 'sort_by': ['-price', 'id'], 'page': 2, 'page_size': 5},
            {'where': None, 'sort_by': None}, {'where': {'name': 'x' * 150}},  # name holds 100; a where, 1000
            {'sort_by': ['-price nulls first', 'day nulls last'], 'total': True, 'after': None}]
    bad = [{'where': {'is_active': {'$lt': True}}}, {'where': {'count': {'$like': '1%'}}},
           {'where': {'secret': 'x'}}, {'where': {'$nor': []}}, {'where': {'name': {}}},
           {'where': {'$or': []}}, {'where': {'color': {'$in': 'red'}}}, {'where': {'name': 'x' * 1001}},
           {'sort_by': ['price', '-price']}, {'sort_by': 'secret'}, {'sort_by': ['price', 'price nulls last']},
           {'sort_by': 'price nulls'}, {'total': 'yes'}, {'after': 5}]
    for body in good:
        assert check.is_valid(body), body
        answer = post(server, '/api/v0/items/list', body)
        assert answer.status_code == 200, (body, answer.text)
    for body in bad:
        assert not check.is_valid(body), body
        answer = post(server, '/api/v0/items/list', body)
        assert answer.status_code == 400 and answer.json()['error']['field'] == next(iter(body)), (body, answer.text)


# Every documented status can be provoked

RECIPES = {  # (path, status): a body that makes it
    ('/api/v0/tasks/read', 404): {'id': 999_999_999},
    ('/api/v0/users/sessions/create', 401): {'login': 'alice', 'password': 'not it'},
}


def test_every_documented_status_of_the_example_is_real(served):
    settings = ('--max-body-size', '1K', '--metrics-allow', '10.9.9.9')
    server, limited = served('myproduct', *settings), served('myproduct', *settings, '--rate-limit', '1/h burst 2')
    document = fetch_document(limited)
    for path, method, operation in operations(document):
        for status in operation['responses']:
            if status == '200':
                continue
            status = int(status)
            if status == 400:
                answer = post(server, path, b'[]')
            elif status == 413:
                answer = post(server, path, b'{"a": "' + b'x' * 2000 + b'"}')
            elif status == 415:
                answer = post(server, path, b'{}', **{'Content-Type': 'text/plain'})
            elif status == 429:
                for _ in range(3):  # the rate is the client's, over all actions: a 400 takes a token too
                    answer = post(limited, path, b'[]')
                assert answer.headers['Retry-After'].isdigit()
            elif status == 403 and path == '/metrics':
                answer = requests.get(server.url + path, timeout=10)
            elif status == 503:
                answer = _shed(path)
            else:
                assert (path, status) in RECIPES, f'{method.upper()} {path} documents {status}: add a recipe'
                answer = post(server, path, RECIPES[path, status])
            assert answer.status_code == status, (path, status, answer.text)
            assert 'error' in answer.json()


class _Answer:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self._body = int(status[:3]), dict(headers), body
        self.text = body

    def json(self):
        return json.loads(self._body)


def _shed(path):
    """A 503 of the real hot path: a request past --max-in-flight (here, in
    process: the example has no action slow enough to hold one over a socket)."""
    application = app(str(EXAMPLE), start=False, max_in_flight=1)
    application.in_flight = 1
    route = application.routes[path]
    return _Answer(*application.respond(route, 'POST', b'{}', b'application/json', ('1', route, '127.0.0.1', None,
                                                                                     None, None, {})))


def test_statuses_follow_the_settings(served):
    """429 only where a rate applies, 415 only when JSON is required, 503 only with a cap."""
    plain = fetch_document(served('myproduct'))
    echo = plain['paths']['/api/v0/echo/read']['post']['responses']
    assert '429' not in echo and '415' in echo and '503' in echo
    loose = fetch_document(served('myproduct', '--require-json', 'off', '--max-in-flight', '0'))
    echo = loose['paths']['/api/v0/echo/read']['post']['responses']
    assert '415' not in echo and '503' not in echo
    own_rate = fetch_document(served('proto'))['paths']
    assert '429' in own_rate['/api/v0/held/update']['post']['responses']
    assert '429' not in own_rate['/api/v0/held/read']['post']['responses']


def test_raw_actions_are_opaque_and_raised_statuses_found(served):
    paths = fetch_document(served('proto'))['paths']
    assert set(paths['/api/v0/raw/read']) == {'get', 'post'}
    assert paths['/api/v0/raw/update']['post']['responses']['200']['content'] == {'*/*': {'schema': {}}}
    assert paths['/api/v0/raw/create']['post']['requestBody']['content'] == {'*/*': {'schema': {}}}
    errors = paths['/api/v0/errors/read']['post']['responses']
    assert 'default' in errors  # ApiError(request.status): a status the code computes
    assert paths['/api/v0/fields/read']['post']['requestBody']['required'] is True


# Custom actions: field() options, subfields, a TypedDict answer

CUSTOM = '''
"""Described actions."""
from typing import Literal, NotRequired, TypedDict

from apiphant import action
from apiphant.validation import Conflict, field


class Tag(TypedDict):
    name: str
    weight: float | None


class Answer(TypedDict):
    id: int
    kind: Literal['a', 'b']
    tags: list[Tag]
    note: NotRequired[str]


def create(request) -> Answer:
    """Make a thing: every kind of field() option."""
    size = field(request, 'size', is_required=True, valid_type=int, min_value=1, max_value=10)
    kind = field(request, 'kind', default_value='a', valid_values=('a', 'b'))
    code = field(request, 'code', valid_type=str, pattern=r'[A-Z]{3}', explain='three capitals')
    pair = field(request, 'pair', valid_type=list, valid_length=2)
    ratio = field(request, 'ratio', valid_type=float, max_value=1)
    name = field(request.owner, 'name', is_required=True, valid_type=str, max_length=20)
    if size == 10:
        raise Conflict('ten is taken')
    return {'id': size, 'kind': kind, 'tags': [{'name': name, 'weight': ratio}], 'note': str((code, pair))}


@action
def quiet(request) -> None:
    """Answers {}."""
'''


@pytest.fixture(scope='module')
def custom(tmp_path_factory):
    root = tmp_path_factory.mktemp('described') / 'described'
    (root / 'api' / 'v1').mkdir(parents=True)
    for package in (root, root / 'api', root / 'api' / 'v1'):
        (package / '__init__.py').write_text('__version__ = "2.5"\n' if package == root else '')
    (root / 'api' / 'v1' / 'things.py').write_text(textwrap.dedent(CUSTOM))
    server = ServedProduct(root, '--access-log', 'off').start()
    yield server
    server.stop()


def test_custom_actions_are_described_from_their_code(custom):
    document = fetch_document(custom)
    validate(document)
    assert document['info'] == {'title': 'described', 'version': '2.5', 'description': 'The JSON API of described.'}
    create = document['paths']['/api/v1/things/create']['post']
    schema = create['requestBody']['content']['application/json']['schema']
    properties = schema['properties']
    assert schema['required'] == ['size', 'owner']
    assert properties['size'] == {'type': 'integer', 'format': 'int64', 'minimum': 1, 'maximum': 10}
    assert properties['kind'] == {'enum': ['a', 'b'], 'default': 'a'}
    assert properties['code'] == {'type': 'string', 'pattern': '^(?:[A-Z]{3})$', 'description': 'three capitals'}
    assert properties['pair'] == {'type': 'array', 'minItems': 2, 'maxItems': 2}
    assert properties['ratio'] == {'type': 'number', 'maximum': 1}
    assert properties['owner']['required'] == ['name'] and properties['owner']['properties']['name']['maxLength'] == 20
    assert '409' in create['responses'] and 'default' not in create['responses']
    answer = create['responses']['200']['content']['application/json']['schema']
    assert answer == {'$ref': '#/components/schemas/described.api.v1.things.Answer'}
    shape = document['components']['schemas']['described.api.v1.things.Answer']
    assert shape['required'] == ['id', 'kind', 'tags'] and shape['properties']['kind'] == {'enum': ['a', 'b']}
    quiet = document['paths']['/api/v1/things/quiet']['post']['responses']['200']['content']['application/json']
    assert quiet['schema'] == {'type': 'object', 'maxProperties': 0}
    example = create['requestBody']['content']['application/json']['example']
    assert example == {'size': 1, 'owner': {'name': 'text'}}
    answer = post(custom, '/api/v1/things/create', {**example, 'ratio': 0.5, 'code': 'ABC', 'pair': [1, 2]})
    assert answer.status_code == 200
    assert not list(validator(document, {'$ref': '#/components/schemas/described.api.v1.things.Answer'})
                    .iter_errors(answer.json()))
    for wrong in ({'code': 'abc'}, {'pair': [1]}, {'ratio': 2}, {'size': 11}, {'owner': {'name': 'x' * 21}}):
        assert not validator(document, schema).is_valid({**example, **wrong})
        assert post(custom, '/api/v1/things/create', {**example, **wrong}).status_code == 400
    assert post(custom, '/api/v1/things/create', {**example, 'size': 10}).status_code == 409


# The command line, the switch

def test_the_command_line_prints_the_served_document_without_a_database(served, tmp_path):
    database = tmp_path / 'absent' / 'tables.db'
    printed = subprocess.run([sys.executable, '-m', 'apiphant', str(DESCRIBED['crudproduct']), '--openapi'],
                             capture_output=True, text=True, timeout=60,
                             env={'APIPHANT_DATABASE_URL': f'sqlite:///{database}', 'PATH': '/usr/bin:/bin'})
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == fetch_document(served('crudproduct'))
    assert not database.parent.exists()


def test_docs_off_serves_neither(served):
    server = served('myproduct', '--docs', 'off')
    for path in ('/api/openapi.json', '/docs', '/docs/swagger-ui-bundle.js'):
        answer = requests.get(server.url + path, timeout=10)
        assert answer.status_code == 404 and answer.json() == {'error': '404 Not Found'}
    off = subprocess.run([sys.executable, '-m', 'apiphant', str(EXAMPLE), '--openapi', '--docs', 'off'],
                         capture_output=True, text=True, timeout=60)
    assert '/docs' not in json.loads(off.stdout)['paths'] and '/api/v0/echo/read' in off.stdout


# schemathesis against the example product

HOOKS = '''
import schemathesis


def _integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value


@schemathesis.hook
def map_body(context, body):
    """JSON Schema counts 100.0 as an integer; apiphant's int fields take 100
    and refuse 100.0 (reported; a JavaScript client cannot tell them apart)."""
    return _integers(body)
'''


def test_schemathesis_finds_nothing_in_the_example(served, tmp_path):
    """Every operation, every phase and check, a fixed seed and number of examples."""
    server = served('myproduct')
    hooks = tmp_path / 'hooks.py'
    hooks.write_text(HOOKS)
    run = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / 'st'), 'run', server.url + '/api/openapi.json',
         '--checks', 'all', '--max-examples', '40', '--seed', '14', '--workers', '1', '--no-color',
         '--suppress-health-check', 'too_slow'],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={'SCHEMATHESIS_HOOKS': str(hooks), 'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path)})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    selected = re.search(r'Selected: (\d+)/(\d+)\n\s*Tested: (\d+)', run.stdout)
    assert selected and len(set(selected.groups())) == 1, run.stdout[-3000:]
