"""The where language, sorting, paging, columns and declarations, in process:
pure functions, no database, no server."""
import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from apiphant.errors import Invalid
from apiphant.crud import ACTIONS, Column, Limits, OPERATORS, Table
from apiphant.crud.columns import KINDS
from apiphant.crud.query import compile_where, order_by, paging
from apiphant.crud.schema import differences
from apiphant.crud.storage import database_url
from apiphant.product import ProductError
from conftest import ROOT

UTC = datetime.timezone.utc

things = Table('things',
    name=Column(str, max_length=10),
    count=Column(int, default=0),
    price=Column(float),
    is_active=Column(bool, default=False),
    order=Column(int),
    day=Column('date'),
    seen_at=Column('datetime'),
    secret=Column(str, hidden=True),
)
FIELDS = things.query_columns
DIALECTS = [sqlite.dialect(), postgresql.dialect()]


def compiled(where, dialect=DIALECTS[0], limits=Limits()):
    clause = compile_where(where, FIELDS, limits)
    return clause.compile(dialect=dialect, compile_kwargs={'render_postcompile': True})


def explain_of(call, *args, **kwargs):
    with pytest.raises(Invalid) as info:
        call(*args, **kwargs)
    return info.value


# Every operator, with what it binds.
OPERATOR_CASES = [
    ({'name': 'x'}, 'things.name = ?', ['x']),
    ({'name': None}, 'things.name IS NULL', []),
    ({'name': {'$eq': 'x'}}, 'things.name = ?', ['x']),
    ({'name': {'$eq': None}}, 'things.name IS NULL', []),
    ({'name': {'$ne': 'x'}}, 'things.name IS NOT ?', ['x']),
    ({'name': {'$ne': None}}, 'things.name IS NOT NULL', []),
    ({'count': {'$lt': 5}}, 'things.count < ?', [5]),
    ({'count': {'$le': 5}}, 'things.count <= ?', [5]),
    ({'count': {'$gt': -5}}, 'things.count > ?', [-5]),
    ({'count': {'$ge': 2 ** 63 - 1}}, 'things.count >= ?', [2 ** 63 - 1]),
    ({'price': {'$gt': 1}}, 'things.price > ?', [1.0]),
    ({'count': {'$in': [1, 2]}}, 'things.count IN (?, ?)', [1, 2]),
    ({'count': {'$nin': [1, 2]}}, 'things.count IS NULL OR (things.count NOT IN (?, ?))', [1, 2]),
    ({'price': {'$exists': True}}, 'things.price IS NOT NULL', []),
    ({'price': {'$exists': False}}, 'things.price IS NULL', []),
    ({'name': {'$like': 'a%'}}, "things.name LIKE ? ESCAPE '\\'", ['a%']),
    ({'name': {'$ilike': 'a%'}}, "lower(things.name) LIKE lower(?) ESCAPE '\\'", ['a%']),
    ({'name': {'$contains': '5%_/'}}, "(things.name LIKE '%' || ? || '%' ESCAPE '/')", ['5/%/_//']),
    ({'name': {'$icontains': 'A'}}, "(lower(things.name) LIKE '%' || lower(?) || '%' ESCAPE '/')", ['A']),
    ({'$and': [{'count': 1}, {'name': 'x'}]}, 'things.count = ? AND things.name = ?', [1, 'x']),
    ({'$or': [{'count': 1}, {'name': 'x'}]}, 'things.count = ? OR things.name = ?', [1, 'x']),
    ({'$not': {'count': 1}}, 'coalesce(things.count = ?, 0) = 0', [1]),
    ({'count': {'$not': {'$gt': 1}}}, 'coalesce(things.count > ?, 0) = 0', [1]),
    ({'count': {'$gt': 1, '$lt': 3}}, 'things.count > ? AND things.count < ?', [1, 3]),
    ({'is_active': True}, 'things.is_active = 1', []),  # SQLAlchemy renders booleans as literals
    ({'order': 1}, 'things."order" = ?', [1]),
    ({'id': {'$in': [1]}}, 'things.id IN (?)', [1]),
    ({'day': {'$ge': '2026-11-22'}}, 'things.day >= ?', [datetime.date(2026, 11, 22)]),
    ({'seen_at': {'$lt': '2026-11-22T05:00:00+02:00'}}, 'things.seen_at < ?',
     [datetime.datetime(2026, 11, 22, 3, tzinfo=UTC)]),
    ({}, '1', []),
]


@pytest.mark.parametrize('where, sql, params', OPERATOR_CASES, ids=repr)
def test_operators_compile_to_bound_parameters(where, sql, params):
    result = compiled(where)
    assert str(result) == sql
    assert [result.construct_params()[name] for name in result.positiontup] == params


def test_every_operator_has_a_case():
    used = {key for where, _, _ in OPERATOR_CASES for key in _keys(where)}
    assert set(OPERATORS) | {'$and', '$or', '$not'} <= used


def _keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


@pytest.mark.parametrize('dialect', DIALECTS, ids=lambda d: d.name)
def test_values_never_reach_the_sql_text(dialect):
    hostile = "x'; DROP TABLE things; --"
    result = compiled({'$or': [{'name': hostile}, {'name': {'$like': hostile}},
                               {'name': {'$contains': hostile}}, {'name': {'$in': [hostile]}}]}, dialect)
    assert 'DROP' not in str(result)
    assert hostile in result.construct_params().values()


def test_postgresql_quotes_keywords_and_casts_parameters():
    text = str(compiled({'order': 1, 'name': 'x'}, DIALECTS[1]))
    assert 'things."order" = %(order_1)s' in text


# Bad where objects: each is a 400 on the field "where", never SQL. Shared
# with the contract suite, which sends them to both databases (its items
# table has these columns too).
BAD_WHERES = [
    ('not an object', ['name']),
    ('not an object', 'name'),
    ('unknown field', {'nothing': 1}),
    ('hidden field', {'secret': 'x'}),
    ('SQL as a field', {'name; DROP TABLE things': 1}),
    ('SQL as a field 2', {'name = name OR 1=1 --': 1}),
    ('quoted field', {'"name"': 1}),
    ('unknown operator at the top', {'$where': 'sleep(10)'}),
    ('unknown operator on a field', {'name': {'$where': 'sleep(10)'}}),
    ('operator carrying SQL', {'name': {'$eq; DROP TABLE things': 1}}),
    ('$regex is not ours', {'name': {'$regex': '.*'}}),
    ('field operator at the top', {'$gt': 1}),
    ('field of no operator', {'name': {'a': 1}}),
    ('empty operator object', {'name': {}}),
    ('$and not a list', {'$and': {'name': 'x'}}),
    ('$and empty', {'$and': []}),
    ('$or of a non-object', {'$or': [1]}),
    ('$not of a list', {'$not': [{'name': 'x'}]}),
    ('field $not of a value', {'name': {'$not': 'x'}}),
    ('string for an int', {'count': '1'}),
    ('string for an int operator', {'count': {'$gt': '1'}}),
    ('float for an int', {'count': 1.5}),
    ('bool for an int', {'count': True}),
    ('int for a bool', {'is_active': 1}),
    ('order of a bool', {'is_active': {'$lt': False}}),
    ('above 64 bits', {'count': 2 ** 63}),
    ('below 64 bits', {'count': {'$lt': -2 ** 63 - 1}}),
    ('NaN as a string', {'price': {'$gt': 'NaN'}}),
    ('huge float for a float', {'price': {'$gt': 10 ** 400}}),
    ('$like on a number', {'count': {'$like': '1%'}}),
    ('$ilike on a bool', {'is_active': {'$ilike': 't%'}}),
    ('$contains on a date', {'day': {'$contains': '2026'}}),
    ('$like of a number', {'name': {'$like': 1}}),
    ('$in not a list', {'count': {'$in': 1}}),
    ('$in with null', {'count': {'$in': [1, None]}}),
    ('$in of objects', {'count': {'$in': [{'a': 1}]}}),
    ('$in too long', {'count': {'$in': list(range(101))}}),
    ('$lt null', {'count': {'$lt': None}}),
    ('$exists not a bool', {'price': {'$exists': 1}}),
    ('object value', {'name': {'$eq': {'x': 1}}}),
    ('list value', {'name': {'$eq': ['x']}}),
    ('NUL in a string', {'name': 'a\x00b'}),
    ('bad date', {'day': '2026-13-01'}),
    ('bad datetime', {'seen_at': {'$gt': 'yesterday'}}),
    ('too deep', {'$and': [{'$and': [{'$and': [{'$and': [{'$and': [{'$and': [{'name': 'x'}]}]}]}]}]}]}),
    ('too deep with $not', {'$not': {'$not': {'$not': {'$not': {'$not': {'$not': {'name': 'x'}}}}}}}),
    ('too many conditions', {'$or': [{'count': i} for i in range(33)]}),
    ('too many conditions on one field', {'count': {'$gt': 1, '$lt': 9, '$ne': 3, '$not': {
        '$in': [1]}}, '$or': [{'count': i} for i in range(29)]}),
    ('pattern too long', {'name': {'$like': 'a' * 201}}),
    ('too many wildcards', {'name': {'$like': '%a' * 9}}),
    ('pattern ending in the escape', {'name': {'$like': 'abc\\'}}),
    ('pattern ending in an escaped escape and the escape', {'name': {'$ilike': '%\\\\\\'}}),
    ('string too long', {'name': 'a' * 1001}),
]


@pytest.mark.parametrize('why, where', BAD_WHERES, ids=[why for why, _ in BAD_WHERES])
def test_bad_where_is_a_400_on_where(why, where):
    error = explain_of(compile_where, where, FIELDS)
    assert error.status == 400
    assert error.to_dict()['error']['field'] == 'where'
    assert error.to_dict()['error']['state'] == 'invalid'
    assert error.explain


def test_limits_are_exact():
    assert compiled({'$or': [{'count': i} for i in range(32)]}) is not None
    assert compiled({'count': {'$in': list(range(100))}}) is not None
    assert compiled({'name': {'$like': '%a' * 8}}) is not None
    assert compiled({'name': {'$like': '%\\\\'}}) is not None  # ends with an escaped backslash
    assert compiled({'$and': [{'$and': [{'$and': [{'$and': [{'$and': [{'name': 'x'}]}]}]}]}]}) is not None
    strict = Limits(max_depth=1, max_conditions=2)
    compile_where({'name': 'x', 'count': 1}, FIELDS, strict)
    explain_of(compile_where, {'name': 'x', 'count': 1, 'price': 1}, FIELDS, strict)
    explain_of(compile_where, {'$and': [{'name': 'x'}]}, FIELDS, strict)


def test_explanations_name_what_was_wrong():
    assert 'unknown field' in explain_of(compile_where, {'nothing': 1}, FIELDS).explain
    assert 'unknown operator' in explain_of(compile_where, {'name': {'$where': 1}}, FIELDS).explain
    assert 'text fields only' in explain_of(compile_where, {'count': {'$like': '1'}}, FIELDS).explain
    assert '64 bits' in explain_of(compile_where, {'count': 2 ** 64}, FIELDS).explain
    long_name = 'x' * 500
    assert len(explain_of(compile_where, {long_name: 1}, FIELDS).explain) < 300


def test_no_where_is_no_clause():
    assert compile_where(None, FIELDS) is None


SORT = {name: things.sql.c[name] for name in things.sort_fields}


@pytest.mark.parametrize('sort_by, sql', [
    ('name', 'things.name ASC NULLS FIRST, things.id ASC'),
    ('-count', 'things.count DESC, things.id ASC'),  # never null: no NULLS, which a plain index serves
    (['is_active', '-seen_at'], 'things.is_active ASC, things.seen_at DESC NULLS LAST, things.id ASC'),
    ('-id', 'things.id DESC'),
    ('order', 'things."order" ASC NULLS FIRST, things.id ASC'),
    ('-order nulls first', 'things."order" DESC NULLS FIRST, things.id ASC'),
    ('name nulls last', 'things.name ASC NULLS LAST, things.id ASC'),
    (['-count nulls first', 'id'], 'things.count DESC, things.id ASC'),
])
def test_sort(sort_by, sql):
    clauses = order_by(sort_by, SORT, things.sql.c.id)
    assert ', '.join(str(c.compile(dialect=DIALECTS[0])) for c in clauses) == sql


@pytest.mark.parametrize('sort_by', [
    '-id; --', 'name; DROP TABLE things', 'name desc', 'secret', '-secret', 'nothing', '', '-',
    '+name', [], ['name', 'name'], ['name', '-name'], ['a', 'b', 'c', 'd'], 1, {'name': 1},
    [1], None, 'name nulls', 'name nulls middle', 'name NULLS LAST', 'name  nulls last', 'name nulls last ',
    '-nulls last', ['name nulls first', '-name nulls last'],
], ids=repr)
def test_bad_sort_is_a_400_on_sort_by(sort_by):
    error = explain_of(order_by, sort_by, SORT, things.sql.c.id)
    assert error.to_dict()['error']['field'] == 'sort_by'


@pytest.mark.parametrize('request_, expected', [
    ({}, (1, 20)), ({'page': 3, 'page_size': 100}, (3, 100)), ({'page_size': 1}, (1, 1)),
])
def test_paging(request_, expected):
    assert paging(request_, 20, 100) == expected


@pytest.mark.parametrize('request_, field', [
    ({'page_size': 0}, 'page_size'), ({'page_size': 101}, 'page_size'), ({'page_size': '5'}, 'page_size'),
    ({'page_size': True}, 'page_size'), ({'page_size': 5.0}, 'page_size'), ({'page': 0}, 'page'),
    ({'page': -1}, 'page'), ({'page': 2 ** 62}, 'page'), ({'page': '1'}, 'page'), ({'page': None}, 'page'),
])
def test_bad_paging(request_, field):
    assert explain_of(paging, request_, 20, 100).to_dict()['error']['field'] == field


# Columns

@pytest.mark.parametrize('kind, value, stored', [
    ('str', 'héllo', 'héllo'), ('int', -2 ** 63, -2 ** 63), ('int', 2 ** 63 - 1, 2 ** 63 - 1),
    ('float', 1, 1.0), ('float', 0.1, 0.1), ('bool', False, False),
    ('date', '2026-11-22', datetime.date(2026, 11, 22)),
    ('datetime', '2026-11-22T03:04:05Z', datetime.datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)),
    ('datetime', '2026-11-22T05:04:05+02:00', datetime.datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)),
    ('datetime', '2026-11-22 03:04:05', datetime.datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)),
])
def test_kinds_parse(kind, value, stored):
    assert KINDS[kind].parse(value) == stored
    assert type(KINDS[kind].parse(value)) is type(stored)


@pytest.mark.parametrize('kind, value', [
    ('str', 1), ('str', None), ('str', 'a\x00'), ('int', True), ('int', 1.5), ('int', 2.0 ** 60), ('int', '1'),
    ('int', 2 ** 63), ('int', -2 ** 63 - 1), ('float', True), ('float', 'NaN'), ('float', float('nan')),
    ('float', float('inf')), ('float', 10 ** 400), ('bool', 1), ('bool', 'true'), ('date', '2026-02-30'),
    ('date', 20261122), ('date', '2026-11-22T03:04:05'), ('datetime', 'now'), ('datetime', 1),
    ('datetime', '0001-01-01T00:00:00+01:00'), ('datetime', '2026-11-22' + ' ' * 100),
], ids=repr)
def test_kinds_reject(kind, value):
    with pytest.raises(ValueError):
        KINDS[kind].parse(value)


def test_column_checks():
    title = Column(str, required=True, max_length=3)
    assert title.check('abc') == 'abc'
    for bad in ('abcd', None, 1):
        with pytest.raises(ValueError):
            title.check(bad)
    color = Column(str, choices=['red', 'blue'])
    assert color.check(None) is None and color.check('red') == 'red'
    with pytest.raises(ValueError, match="one of 'red', 'blue'"):
        color.check('green')
    flag = Column(bool, default=False)
    assert not flag.nullable and flag.initial() is False and flag.constant_default is False
    with pytest.raises(ValueError, match='null'):
        flag.check(None)
    level = Column(int, choices=[1, 2])
    with pytest.raises(ValueError):
        level.check(True)  # true is not 1
    now = Column('datetime', default='now')
    assert now.constant_default is None
    assert abs(now.initial() - datetime.datetime.now(UTC)).total_seconds() < 5


@pytest.mark.parametrize('make', [
    lambda: Column(list), lambda: Column('text'), lambda: Column(str, required=True, default='x'),
    lambda: Column(str, required=True, writable=False), lambda: Column(int, max_length=3),
    lambda: Column(str, max_length=0), lambda: Column(int, default='1'), lambda: Column(str, choices=[]),
    lambda: Column(str, choices=[1]), lambda: Column(str, choices=['a'], default='b'),
    lambda: Column(int, default='now'),
], ids=range(11))
def test_bad_columns_fail_at_declaration(make):
    with pytest.raises((TypeError, ValueError)):
        make()


@pytest.mark.parametrize('make', [
    lambda: Table('Tasks'), lambda: Table('tasks; drop'), lambda: Table('1tasks'), lambda: Table(''),
    lambda: Table('t', id=Column(int)), lambda: Table('t', version=Column(int)),
    lambda: Table('t', Title=Column(str)), lambda: Table('t', title=str),
    lambda: Table('t', nothing=1), lambda: Table('t', actions=('create', 'drop')),
    lambda: Table('t', actions='create'), lambda: Table('t', page_size=101),
    lambda: Table('t', secret=Column(str, hidden=True), query_fields=['secret']),
    lambda: Table('t', secret=Column(str, hidden=True), sort_fields=['secret']),
    lambda: Table('t', secret=Column(int, hidden=True), stats_fields=['secret']),
    lambda: Table('t', name=Column(str), stats_fields=['name']),
    lambda: Table('t', name=Column(str), group_fields=['id']),
    lambda: Table('t', name=Column(str), sort_by='nothing'),
], ids=range(18))
def test_bad_tables_fail_at_declaration(make):
    with pytest.raises((TypeError, ValueError)):
        make()


def test_a_bad_default_sort_names_the_table():
    with pytest.raises(ValueError, match=r"^t: sort_by '-nothing': cannot sort by 'nothing'"):
        Table('t', name=Column(str), sort_by='-nothing')


def test_a_column_may_bear_an_option_name():
    table = Table('t', actions=Column(str), limits=Column(int), name=Column(str))
    assert list(table.columns) == ['actions', 'limits', 'name'] and table.actions == ACTIONS


def test_a_column_object_belongs_to_one_table():
    shared = Column(str)
    Table('first', a=shared)
    with pytest.raises(ValueError, match='already a'):
        Table('second', b=shared)


def test_allow_lists_default_to_visible_columns():
    assert things.query_fields == ('id', 'name', 'count', 'price', 'is_active', 'order', 'day', 'seen_at')
    assert things.sort_fields == things.query_fields
    assert things.group_fields == things.query_fields[1:]
    assert things.stats_fields == ('count', 'price', 'order')
    assert 'secret' not in {c.name for c in things.visible}


def test_actions_are_plain_functions_named_and_documented():
    actions = Table('gadgets', name=Column(str), actions=ACTIONS + ('stats',))._action('stats')
    assert actions.__name__ == 'stats' and 'gadgets' in actions.__doc__
    assert actions.__module__ == __name__


# Database URLs

@pytest.mark.parametrize('text, url', [
    ('postgresql://u:p@h:5/db', 'postgresql+psycopg://u:p@h:5/db'),
    ('postgres://h/db?options=-csearch_path%3Dx', 'postgresql+psycopg://h/db?options=-csearch_path%3Dx'),
    ('postgresql+psycopg://h/db', 'postgresql+psycopg://h/db'),
    ('sqlite:////var/lib/x.sqlite3', 'sqlite:////var/lib/x.sqlite3'),
    ('sqlite:///relative.sqlite3', 'sqlite:///relative.sqlite3'),
])
def test_database_urls(text, url):
    assert database_url(text, 'anything').render_as_string(hide_password=False) == url


def test_the_default_database_is_beside_the_product():
    for text in ('', 'none'):
        assert database_url(text, 'conftest').database == str(ROOT / 'conftest.sqlite3')
    with pytest.raises(ProductError, match='cannot tell where the SQLite file'):
        database_url('none', 'no_such_product')


@pytest.mark.parametrize('text', ['mysql://root@localhost/db', 'sqlite://', 'sqlite:///:memory:',
                                  'postgresql+psycopg2://h/db', 'not a url', 'http://h/db'])
def test_bad_database_urls(text):
    with pytest.raises(ProductError, match='the database URL should be sqlite:///PATH, postgresql://... or none'):
        database_url(text, 'anything')


# Schema differences

def test_differences():
    existing = {'id': sa.Integer(), 'version': sa.BigInteger(), 'name': sa.Text(), 'count': sa.BigInteger(),
                'price': sa.Float(), 'is_active': sa.Boolean(), 'order': sa.BigInteger(), 'day': sa.Date(),
                'seen_at': sa.DateTime(), 'secret': sa.Text()}
    assert differences(things, existing) == ([], [])
    added, problems = differences(things, {k: v for k, v in existing.items() if k not in ('day', 'seen_at')})
    assert [c.name for c in added] == ['day', 'seen_at'] and problems == []
    _, problems = differences(things, {**existing, 'count': sa.Text(), 'gone': sa.Integer()})
    assert len(problems) == 2
    assert 'column count is TEXT in the database but declared int' in problems[0]
    assert 'column gone (INTEGER) is no longer declared' in problems[1]
    assert 'ALTER TABLE things DROP COLUMN gone' in problems[1]
    _, problems = differences(things, {'name': sa.Text()})
    assert 'no column id' in problems[0] and 'no column version' in problems[1]
    _, problems = differences(things, {**existing, 'day': sa.DateTime()})
    assert 'column day' in problems[0]


# Docs

def test_every_operator_and_limit_is_documented():
    docs = (ROOT / 'README.rst').read_text(encoding='utf-8')
    extra = ROOT / 'docs_crud.rst'
    if extra.exists():
        docs += extra.read_text(encoding='utf-8')
    section = docs[docs.index('Generated CRUD\n'):]
    for name in [*OPERATORS, '$and', '$or', '$not']:
        assert f'``{name}``' in section, name
    for name, value in vars(Limits()).items():
        assert f'``{name}``' in section and str(value) in section, name


def test_the_database_is_made_from_the_settings_handed_over(tmp_path, monkeypatch):
    from apiphant.crud import configure, storage
    monkeypatch.setenv('APIPHANT_DATABASE_URL', f'sqlite:///{tmp_path}/exported.sqlite3')  # not a channel
    try:
        configure()
        assert storage.database('conftest').url.database == str(ROOT / 'conftest.sqlite3')
        configure(database_url=f'sqlite:///{tmp_path}/handed.sqlite3', database_wait=0.5)
        handed = storage.database('conftest')
        assert (handed.url.database, handed.wait, handed.timeout) == (f'{tmp_path}/handed.sqlite3', 0.5, 5.0)
        with pytest.raises(TypeError, match='configure\\(\\) takes no database_colour'):
            configure(database_colour='blue')
    finally:
        configure()


def test_unique_and_indexes_name_columns():
    with pytest.raises(ValueError, match="things: unique names 'nope', not a column"):
        Table('things', title=Column(str), unique=[('title', 'nope')])
    with pytest.raises(ValueError, match='indexes should be a list of tuples of column names'):
        Table('things', title=Column(str), indexes='title')
    long = Table('t' * 60, a=Column(str, unique=True), b=Column(int, index=True), unique=[('a', 'b')])
    names = sorted(index.name for index in long.sql.indexes)
    assert len(names) == 3 and all(len(name) <= 63 for name in names) and len(set(names)) == 3
