"""field() and its options, and declared_fields() reading them back."""
import re
import textwrap
from collections.abc import Callable

import pytest

from apiphant.errors import BadRequest, Conflict, Invalid, Missing
from apiphant.request import Request
from apiphant.validation import Field, Fields, declared_fields, field, strict

Check = Callable[[object], bool | None]


def invalid(value: object, name: str = 'f', **options: object) -> Invalid:
    with pytest.raises(Invalid) as caught:
        field(Request({name: value}), name, **options)
    return caught.value


def valid(value: object, **options: object) -> object:
    return field(Request(f=value), 'f', **options)


# --- presence: is_required, default_value -------------------------------------------------

def test_absent_optional_field_is_none() -> None:
    assert field(Request(), 'f') is None


def test_present_field_is_returned() -> None:
    assert field(Request(f='x'), 'f') == 'x'


def test_present_null_without_type_constraint_is_none() -> None:
    assert field(Request(f=None), 'f', is_required=True) is None


def test_present_null_with_type_constraint_is_invalid() -> None:
    invalid(None, valid_type=int)


def test_required_absent_is_missing() -> None:
    with pytest.raises(Missing) as caught:
        field(Request(), 'id', is_required=True)
    assert caught.value.to_dict() == {'error': {'field': 'id', 'state': 'missing'}}


def test_required_absent_is_missing_with_explain() -> None:
    with pytest.raises(Missing) as caught:
        field(Request(), 'id', is_required=True, explain='the task id')
    assert caught.value.to_dict() == {'error': {'field': 'id', 'state': 'missing', 'explain': 'the task id'}}


@pytest.mark.parametrize('present', [0, '', False, [], {}, None])
def test_required_present_falsy_is_not_missing(present: object) -> None:
    assert field(Request(f=present), 'f', is_required=True) == present


def test_missing_is_a_bad_request_not_invalid() -> None:
    with pytest.raises(BadRequest) as caught:
        field(Request(), 'f', is_required=True)
    assert not isinstance(caught.value, Invalid)


def test_default_value_when_absent() -> None:
    assert field(Request(), 'limit', default_value=10) == 10


def test_default_value_not_used_when_present() -> None:
    assert field(Request(limit=3), 'limit', default_value=10) == 3


def test_default_value_not_used_for_present_null() -> None:
    assert field(Request(limit=None), 'limit', default_value=10) is None


def test_default_value_is_the_same_object() -> None:
    default: list[int] = []
    assert field(Request(), 'f', default_value=default) is default


@pytest.mark.parametrize('options', [
    {'valid_type': int},
    {'valid_value': 'x'},
    {'valid_length': 3},
    {'max_length': 1},
    {'min_length': 5},
    {'min_value': 100},
    {'max_value': -100},
    {'valid_values': ('a', 'b')},
    {'pattern': r'\d+'},
    {'validator': lambda value: False},
])
def test_default_value_returned_even_when_options_would_reject_it(options: dict[str, object]) -> None:
    assert field(Request(), 'f', default_value='default!', **options) == 'default!'


# --- valid_value ---------------------------------------------------------------------------

def test_valid_value_equal() -> None:
    assert valid('v1', valid_value='v1') == 'v1'


def test_valid_value_different_is_invalid() -> None:
    invalid('v2', valid_value='v1')


@pytest.mark.parametrize(('value', 'expected'), [(True, 1), (1, True), (False, 0), (0, False)])
def test_valid_value_does_not_confuse_bool_and_number(value: object, expected: object) -> None:
    invalid(value, valid_value=expected)


def test_valid_value_explain() -> None:
    assert invalid('no', valid_value='yes', explain='say yes').to_dict()['error']['explain'] == 'say yes'


# --- valid_type ----------------------------------------------------------------------------

@pytest.mark.parametrize(('valid_type', 'value'), [
    (int, 0), (int, -5), (int, 2**70),
    (float, 1.5), (float, 1), (float, 0), (float, -3),
    (str, ''), (str, 'x'),
    (bool, True), (bool, False),
    (dict, {}), (dict, Request(a=1)),
    (list, []), (list, [1, 'a']),
    ((int, float), 1), ((int, float), 1.5),
    ((str, type(None)), None), ((str, type(None)), 's'),
    ((int, bool), True), ((bool, str), 'x'),
])
def test_valid_type_accepts(valid_type: object, value: object) -> None:
    assert valid(value, valid_type=valid_type) == value


@pytest.mark.parametrize(('valid_type', 'value'), [
    (int, True), (int, False), (int, 1.5), (int, 2.0 ** 60), (int, float('inf')), (int, '1'), (int, None),
    (float, True), (float, False), (float, '1.5'), (float, None),
    (str, 1), (str, None), (str, ['a']),
    (bool, 1), (bool, 0), (bool, 'true'), (bool, None),
    (dict, []), (dict, 'x'), (dict, None),
    (list, {}), (list, 'abc'), (list, None),
    ((int, float), True), ((int, float), False), ((int, float), '1'),
    ((str, list), {}), ((dict, list), 1),
])
def test_valid_type_rejects(valid_type: object, value: object) -> None:
    invalid(value, valid_type=valid_type)


@pytest.mark.parametrize(('valid_type', 'value', 'expected'), [
    (int, 1.0, 1), (int, -0.0, 0), (int, 2.0 ** 53, 2 ** 53), ((int, str), 100.0, 100), ((int, type(None)), 3.0, 3),
])
def test_valid_type_int_takes_a_whole_float_as_the_int(valid_type: object, value: float, expected: int) -> None:
    # As generated CRUD does: JSON Schema and JavaScript cannot tell 100.0 from 100.
    got = valid(value, valid_type=valid_type, valid_values=(expected,), max_value=expected)
    assert got == expected and type(got) is int


def test_a_whole_float_stays_a_float_where_a_float_is_wanted() -> None:
    assert type(valid(1.0, valid_type=(int, float))) is float
    assert type(valid(1.0)) is float


def test_valid_type_float_returns_the_int_unchanged() -> None:
    value = valid(3, valid_type=float)
    assert value == 3 and type(value) is int


def test_valid_type_nested_request_is_a_request() -> None:
    value = field(Request({'item': {'a': 1}}), 'item', valid_type=dict)
    assert isinstance(value, Request) and value.a == 1


# --- valid_length, max_length, min_length --------------------------------------------------

@pytest.mark.parametrize(('value', 'options'), [
    ('abc', {'valid_length': 3}), ([1, 2, 3], {'valid_length': 3}), ({'a': 1}, {'valid_length': 1}),
    ('', {'valid_length': 0}), ([], {'valid_length': 0}),
    ('abc', {'max_length': 3}), ('', {'max_length': 0}), ([1], {'max_length': 2}),
    ('abc', {'min_length': 3}), ([1, 2], {'min_length': 1}), ('x', {'min_length': 0}),
    ('ab', {'min_length': 1, 'max_length': 3}), ([1, 2, 3], {'min_length': 3, 'max_length': 3}),
    ('é✓😀', {'valid_length': 3}),
])
def test_length_accepts(value: object, options: dict[str, int]) -> None:
    assert valid(value, **options) == value


@pytest.mark.parametrize(('value', 'options'), [
    ('ab', {'valid_length': 3}), ('abcd', {'valid_length': 3}), ([1, 2], {'valid_length': 3}),
    ('abcd', {'max_length': 3}), ([1, 2, 3, 4], {'max_length': 3}), ('a', {'max_length': 0}),
    ('ab', {'min_length': 3}), ([], {'min_length': 1}), ('', {'min_length': 1}),
    ('abcd', {'min_length': 1, 'max_length': 3}), ('', {'min_length': 1, 'max_length': 3}),
])
def test_length_rejects(value: object, options: dict[str, int]) -> None:
    invalid(value, **options)


@pytest.mark.parametrize('option', ['valid_length', 'max_length', 'min_length'])
@pytest.mark.parametrize('value', [5, 1.5, True, None])
def test_length_of_value_without_len_is_invalid(option: str, value: object) -> None:
    invalid(value, **{option: 1})


# --- min_value, max_value ------------------------------------------------------------------

@pytest.mark.parametrize(('value', 'options'), [
    (5, {'min_value': 5}), (5, {'max_value': 5}), (5, {'min_value': 1, 'max_value': 10}),
    (0, {'min_value': 0}), (-1, {'max_value': 0}), (1.5, {'min_value': 1, 'max_value': 2}),
    (2, {'min_value': 1.5}), (0.0, {'min_value': 0}), ('m', {'min_value': 'a', 'max_value': 'z'}),
])
def test_range_accepts(value: object, options: dict[str, object]) -> None:
    assert valid(value, **options) == value


@pytest.mark.parametrize(('value', 'options'), [
    (4, {'min_value': 5}), (6, {'max_value': 5}), (0, {'min_value': 1, 'max_value': 10}),
    (11, {'min_value': 1, 'max_value': 10}), (-0.5, {'min_value': 0}), (2.5, {'max_value': 2}),
])
def test_range_rejects(value: object, options: dict[str, object]) -> None:
    invalid(value, **options)


@pytest.mark.parametrize('value', [True, False])
@pytest.mark.parametrize('options', [{'min_value': 0}, {'max_value': 1}, {'min_value': 0, 'max_value': 1}])
def test_range_rejects_bools(value: bool, options: dict[str, object]) -> None:
    invalid(value, **options)


@pytest.mark.parametrize(('value', 'options'), [
    ('5', {'min_value': 1}), ('5', {'max_value': 10}), (5, {'min_value': 'a'}),
    (None, {'min_value': 0}), ([1], {'max_value': 3}), ({'a': 1}, {'min_value': 0}),
])
def test_range_with_incomparable_types_is_invalid_not_type_error(
        value: object, options: dict[str, object]) -> None:
    invalid(value, **options)


# --- valid_values --------------------------------------------------------------------------

@pytest.mark.parametrize(('value', 'choices'), [
    ('a', ('a', 'b')), ('b', ['a', 'b']), (1, (1, 2)), (True, (True,)), (False, [False, None]),
    (None, (None, 'x')), (2.5, (2.5,)), ('a', {'a', 'b'}), ([1], ([1], [2])), ({'k': 1}, [{'k': 1}]),
])
def test_valid_values_accepts_a_choice(value: object, choices: object) -> None:
    assert valid(value, valid_values=choices) == value


@pytest.mark.parametrize(('value', 'choices'), [
    ('c', ('a', 'b')), (3, (1, 2)), ('1', (1, 2)), (None, ('a',)), ('A', ('a',)), ('a', ()),
])
def test_valid_values_rejects_others(value: object, choices: object) -> None:
    invalid(value, valid_values=choices)


@pytest.mark.parametrize(('value', 'choices'), [
    (True, (1,)), (1, (True,)), (False, (0,)), (0, (False,)), (True, (1.0,)), (1.0, (True,)),
])
def test_valid_values_does_not_confuse_bool_and_number(value: object, choices: object) -> None:
    invalid(value, valid_values=choices)


def test_valid_values_float_choice_accepts_the_equal_int() -> None:
    # JSON has one number type: 1 and 1.0 are the same number, and many clients send 1.
    assert valid(1, valid_values=(0.5, 1.0)) == 1


# --- pattern -------------------------------------------------------------------------------

@pytest.mark.parametrize(('value', 'pattern'), [
    ('abc', r'[a-z]+'), ('2024-01-02', r'\d{4}-\d{2}-\d{2}'), ('', r'\d*'), ('A1', r'(?i)a\d'),
])
def test_pattern_whole_string_match(value: str, pattern: str) -> None:
    assert valid(value, pattern=pattern) == value


@pytest.mark.parametrize(('value', 'pattern'), [
    ('abc1', r'[a-z]+'), ('1abc', r'[a-z]+'), ('abc\n', r'[a-z]+'), ('x2024-01-02', r'\d{4}-\d{2}-\d{2}'),
    ('', r'\d+'), ('ab', 'a'),
])
def test_pattern_partial_match_is_invalid(value: str, pattern: str) -> None:
    invalid(value, pattern=pattern)


@pytest.mark.parametrize('value', [123, None, True, ['abc'], {'a': 'b'}, 1.5])
def test_pattern_on_non_string_is_invalid(value: object) -> None:
    invalid(value, pattern=r'.*')


def test_pattern_precompiled() -> None:
    assert valid('abc', pattern=re.compile('[a-c]+')) == 'abc'
    invalid('abcd', pattern=re.compile('[a-c]+'))


# --- validator -----------------------------------------------------------------------------

def _raise_value_error(value: object) -> bool:
    raise ValueError(f'{value!r} is odd')


def _raise_conflict(value: object) -> bool:
    raise Conflict('already taken')


@pytest.mark.parametrize('check', [
    lambda value: True, lambda value: None, lambda value: 1, lambda value: 'yes', lambda value: [1],
])
def test_validator_none_or_truthy_is_valid(check: Check) -> None:
    assert valid(7, validator=check) == 7


def test_validator_false_is_invalid() -> None:
    error = invalid(7, validator=lambda value: False)
    assert error.to_dict() == {'error': {'field': 'f', 'state': 'invalid', 'explain': 'is refused by its validator'}}


def test_validator_false_names_a_named_validator() -> None:
    assert invalid(7, validator=is_even).error.explain == 'is refused by is_even'


def test_validator_false_with_explain() -> None:
    assert invalid(7, validator=lambda value: False, explain='even').error.explain == 'even'


def test_validator_gets_the_value() -> None:
    seen: list[object] = []
    valid({'a': 1}, validator=seen.append)
    assert seen == [{'a': 1}]


def test_validator_value_error_message_is_the_explain() -> None:
    assert invalid(7, validator=_raise_value_error).to_dict() == {
        'error': {'field': 'f', 'state': 'invalid', 'explain': '7 is odd'}}


def test_validator_value_error_explain_given_wins() -> None:
    assert invalid(7, validator=_raise_value_error, explain='even').error.explain == 'even'


def test_validator_value_error_without_message() -> None:
    def check(value: object) -> bool:
        raise ValueError()
    assert invalid(7, validator=check).to_dict() == {
        'error': {'field': 'f', 'state': 'invalid', 'explain': 'is refused by check'}}


def test_validator_like_int_on_bad_input() -> None:
    assert invalid('x', validator=int).error.state == 'invalid'
    assert valid('12', validator=int) == '12'


def test_validator_api_error_propagates() -> None:
    with pytest.raises(Conflict) as caught:
        valid(7, validator=_raise_conflict)
    assert caught.value.to_dict() == {'error': 'already taken'}


def test_validator_runs_after_the_other_options() -> None:
    calls: list[object] = []
    invalid('abc', valid_type=int, validator=calls.append)
    assert calls == []


def test_validator_not_run_when_absent() -> None:
    calls: list[object] = []
    assert field(Request(), 'f', validator=calls.append) is None
    assert calls == []


# --- explain, error shape ------------------------------------------------------------------

@pytest.mark.parametrize('explain', ['an int', 0, {'min': 1}, False])
def test_explain_passed_through_to_invalid(explain: object) -> None:
    error = invalid('x', valid_type=int, explain=explain)
    assert error.to_dict() == {'error': {'field': 'f', 'state': 'invalid', 'explain': explain}}


def test_invalid_names_the_field() -> None:
    error = invalid('x', name='user_id', valid_type=int)
    assert error.status == 400
    assert error.error.field == 'user_id'


# --- subfields and parents -----------------------------------------------------------------

def test_subfield_of_nested_object() -> None:
    request = Request({'item': {'name': 'lamp', 'tags': ['a']}})
    assert field(request.item, 'name', is_required=True, valid_type=str) == 'lamp'
    assert field(request.item, 'tags', valid_type=list, max_length=1) == ['a']


def test_subfield_missing_names_the_subfield() -> None:
    request = Request({'item': {}})
    with pytest.raises(Missing) as caught:
        field(request.item, 'name', is_required=True)
    assert caught.value.error.field == 'name'


def test_subfield_of_object_in_a_list() -> None:
    request = Request({'items': [{'id': 1}, {'id': 'x'}]})
    assert field(request['items'][0], 'id', valid_type=int) == 1
    with pytest.raises(Invalid):
        field(request['items'][1], 'id', valid_type=int)


@pytest.mark.parametrize('parent', [None, 'item', 5, ['name'], True, 1.5])
def test_non_dict_parent_is_invalid(parent: object) -> None:
    with pytest.raises(Invalid) as caught:
        field(parent, 'name')
    assert caught.value.error.field == 'name'


def test_non_dict_parent_is_invalid_even_with_default() -> None:
    with pytest.raises(Invalid):
        field(Request(item='text').item, 'name', default_value='x')


def test_plain_dict_parent() -> None:
    assert field({'a': 1}, 'a', valid_type=int) == 1


# --- Field records -------------------------------------------------------------------------

def test_field_record_check_is_field() -> None:
    record = Field('n', valid_type=int, min_value=1)
    assert record.check(Request(n=2)) == 2
    with pytest.raises(Invalid):
        record.check(Request(n=0))


def test_field_record_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Field('n').name = 'm'  # type: ignore[misc]


def test_field_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        field(Request(), 'f', no_such_option=1)


def test_field_positional_options_as_in_0_2() -> None:
    # field(request, name, is_required, default_value, valid_value, valid_type, valid_length, max_length, explain)
    with pytest.raises(Missing) as caught:
        field(Request(), 'f', True, None, None, str, None, None, 'why')
    assert caught.value.error.explain == 'why'
    assert field(Request(), 'g', False, 'dflt') == 'dflt'


# --- declared_fields -----------------------------------------------------------------------

def is_even(value: int) -> bool:
    return value % 2 == 0


LIMIT = 50


def action_simple(request: Request) -> dict[str, object]:
    user_id = field(request, 'id', is_required=True, valid_type=int, explain='the user id')
    name = field(request, 'name', default_value='anon', valid_type=str, max_length=40, min_length=1)
    return {'id': user_id, 'name': name}


def action_rich(request: Request) -> dict[str, object]:
    kind = field(request, 'kind', valid_values=('a', 'b'), valid_type=str)
    size = field(request, 'size', valid_type=(int, float), min_value=0, max_value=LIMIT)
    code = field(request, 'code', pattern=r'[A-Z]{3}', valid_length=3)
    even = field(request, 'even', validator=is_even, valid_value=-1)
    return {'kind': kind, 'size': size, 'code': code, 'even': even}


def action_subfields(request: Request) -> None:
    field(request, 'item', is_required=True, valid_type=dict)
    field(request.item, 'name', is_required=True)
    field(request.item.owner, 'email', pattern=r'.+@.+')


def action_positional(request: Request) -> None:
    field(request, 'id', True, 7, None, int, None, 12, 'an id')


def action_not_literal(request: Request) -> None:
    limit = 10
    field(request, 'a', max_length=limit, validator=lambda value: True, valid_values=list('ab'),
          default_value=dict(x=1), pattern=re.compile('x').pattern)


def action_order(request: Request) -> None:
    if request.get('second_branch'):
        field(request, 'third')
    field(request, 'first'); field(request, 'second')  # noqa: E702


def action_without_fields(request: Request) -> dict[str, str]:
    return {'field': 'not a call'}


def action_field_name_keyword(request: Request) -> None:
    field(request, field_name='token', is_required=True)


def test_declared_fields_in_source_order() -> None:
    assert [record.name for record in declared_fields(action_simple)] == ['id', 'name']


def test_declared_fields_literal_options() -> None:
    assert declared_fields(action_simple) == [
        Field('id', is_required=True, valid_type=int, explain='the user id'),
        Field('name', default_value='anon', valid_type=str, max_length=40, min_length=1),
    ]


def test_declared_fields_rich_options() -> None:
    kind, size, code, even = declared_fields(action_rich)
    assert kind == Field('kind', valid_values=('a', 'b'), valid_type=str)
    assert size == Field('size', valid_type=(int, float), min_value=0, max_value=50)
    assert code == Field('code', pattern='[A-Z]{3}', valid_length=3)
    assert even == Field('even', validator=is_even, valid_value=-1)


def test_declared_fields_type_tuple_is_the_types() -> None:
    size = declared_fields(action_rich)[1]
    assert size.valid_type == (int, float)
    assert all(isinstance(kind, type) for kind in size.valid_type)


def test_declared_fields_records_check_like_field() -> None:
    _, size, code, even = declared_fields(action_rich)
    assert size.check(Request(size=2.5)) == 2.5
    with pytest.raises(Invalid):
        size.check(Request(size=51))
    with pytest.raises(Invalid):
        code.check(Request(code='ab1'))
    with pytest.raises(Invalid):
        even.check(Request(even=3))


def test_declared_fields_parent() -> None:
    assert [(record.name, record.parent) for record in declared_fields(action_subfields)] == [
        ('item', None), ('name', 'item'), ('email', 'item.owner')]


def test_declared_fields_subfield_options() -> None:
    assert declared_fields(action_subfields)[1] == Field('name', is_required=True, parent='item')


def test_declared_fields_positional_options() -> None:
    assert declared_fields(action_positional) == [
        Field('id', is_required=True, default_value=7, valid_type=int, max_length=12, explain='an id')]


def test_declared_fields_non_literal_options_are_none() -> None:
    (record,) = declared_fields(action_not_literal)
    assert record == Field('a')
    assert (record.max_length, record.validator, record.valid_values, record.default_value,
            record.pattern) == (None, None, None, None, None)


def test_declared_fields_order_is_source_order_not_tree_order() -> None:
    assert [record.name for record in declared_fields(action_order)] == ['third', 'first', 'second']


def test_declared_fields_none() -> None:
    assert declared_fields(action_without_fields) == []


def test_declared_fields_field_name_as_keyword() -> None:
    assert declared_fields(action_field_name_keyword) == [Field('token', is_required=True)]


@pytest.mark.parametrize('function', [len, print, dict.get, eval('lambda request: request')])
def test_declared_fields_without_source_is_empty(function: Callable[..., object]) -> None:
    assert declared_fields(function) == []


def test_declared_fields_of_a_nested_function() -> None:
    def read(request: Request) -> None:
        field(request, 'q', valid_type=str, max_length=LIMIT)
    assert declared_fields(read) == [Field('q', valid_type=str, max_length=50)]


def _make_nested_with_docstring() -> Callable[[Request], object]:
    def read(request: Request) -> object:
        """Read one.

Continued at column 0, as docstrings pasted from elsewhere sometimes are."""
        return field(request, 'id', valid_type=int)
    return read


def test_declared_fields_of_a_nested_function_with_an_unindented_string_line() -> None:
    assert declared_fields(_make_nested_with_docstring()) == [Field('id', valid_type=int)]


ACTIONS_IN_A_TUPLE = (0,
                      lambda request: field(request, 'x', valid_type=int))


def test_declared_fields_of_a_lambda_on_a_continuation_line_does_not_raise() -> None:
    assert declared_fields(ACTIONS_IN_A_TUPLE[1]) in ([], [Field('x', valid_type=int)])


def test_declared_fields_from_exec_source_module() -> None:
    source = textwrap.dedent('''
        from apiphant.validation import field
        def create(request):
            return field(request, 'title', is_required=True, valid_type=str, max_length=80)
    ''')
    namespace: dict[str, object] = {}
    exec(compile(source, '<generated>', 'exec'), namespace)
    assert declared_fields(namespace['create']) == []


# --- explain: the words of generated CRUD ------------------------------------------------------

@pytest.mark.parametrize(('value', 'options', 'words'), [
    ('1', {'valid_type': int}, 'should be an integer'),
    (True, {'valid_type': int}, 'should be an integer'),
    ('x', {'valid_type': float}, 'should be a number'),
    ('x', {'valid_type': (int, float)}, 'should be a number'),
    (1, {'valid_type': str}, 'should be a string'),
    (1, {'valid_type': bool}, 'should be true or false'),
    (1, {'valid_type': (str, bool)}, 'should be a string or a boolean'),
    (1, {'valid_type': dict}, 'should be an object'),
    (1, {'valid_type': list}, 'should be a list'),
    (1, {'valid_type': (str, type(None))}, 'should be a string or null'),
    (1, {'valid_type': re.Pattern}, 'should be a Pattern'),
    ('no', {'valid_value': 'yes'}, "should be 'yes'"),
    (1, {'valid_value': True}, 'should be true'),
    ('x' * 201, {'max_length': 200}, 'should be at most 200 characters long'),
    ('ab', {'max_length': 1}, 'should be at most 1 character long'),
    ('', {'min_length': 1}, 'should not be empty'),
    ('a', {'min_length': 2}, 'should be at least 2 characters long'),
    ('ab', {'valid_length': 3}, 'should be exactly 3 characters long'),
    ([1, 2], {'max_length': 1}, 'should have at most 1 item'),
    ([], {'min_length': 2}, 'should have at least 2 items'),
    ({'a': 1}, {'valid_length': 2}, 'should have exactly 2 items'),
    (5, {'max_length': 2}, 'should be a string, a list or an object'),
    (0, {'min_value': 1, 'max_value': 100}, 'should be from 1 to 100'),
    (0, {'min_value': 1}, 'should be at least 1'),
    (2.5, {'max_value': 2}, 'should be at most 2'),
    (True, {'min_value': 0}, 'should be a number'),
    ('5', {'max_value': 10}, 'should be a number'),
    (5, {'min_value': 'a'}, 'should be a string'),
    ('c', {'valid_values': ('a', 'b')}, "should be one of 'a', 'b'"),
    (3, {'valid_values': (1, None, False)}, 'should be one of 1, null, false'),
    ('a', {'valid_values': ()}, 'has no valid value'),
    ('abc1', {'pattern': '[a-z]+'}, 'should match the pattern [a-z]+'),
    (5, {'pattern': re.compile('[a-z]+')}, 'should be a string matching the pattern [a-z]+'),
    (3, {'validator': is_even}, 'is refused by is_even'),
])
def test_every_invalid_explains_itself(value: object, options: dict[str, object], words: str) -> None:
    assert invalid(value, **options).explain == words
    assert invalid(value, explain='own words', **options).explain == 'own words'


def test_the_words_are_those_of_generated_crud() -> None:
    from apiphant.crud.columns import Column
    for column, options, value in ((Column(int), {'valid_type': int}, 'x'),
                                   (Column(str, max_length=200), {'valid_type': str, 'max_length': 200}, 'x' * 201),
                                   (Column(str, choices=('a', 'b')), {'valid_values': ('a', 'b')}, 'c'),
                                   (Column(float), {'valid_type': float}, 'x'),
                                   (Column(str), {'valid_type': str}, 5)):
        with pytest.raises(ValueError) as crud:
            column.check(value)
        assert invalid(value, **options).explain == str(crud.value)


def test_a_non_object_parent_explains_itself() -> None:
    with pytest.raises(Invalid) as caught:
        field('text', 'name')
    assert caught.value.explain == 'should be a field of an object'


def test_missing_says_only_its_state_as_crud_does() -> None:
    with pytest.raises(Missing) as caught:
        field(Request(), 'id', is_required=True, valid_type=int, max_length=3)
    assert caught.value.to_dict() == {'error': {'field': 'id', 'state': 'missing'}}


# --- None where None is allowed ----------------------------------------------------------------

@pytest.mark.parametrize('options', [
    {'valid_type': (str, type(None)), 'max_length': 3, 'min_length': 1, 'valid_length': 2},
    {'valid_type': (int, type(None)), 'min_value': 1, 'max_value': 3},
    {'valid_type': (str, type(None)), 'pattern': r'\d+'},
    {'valid_values': ('ab', None), 'min_length': 2, 'pattern': 'ab'},
])
def test_allowed_none_skips_lengths_ranges_and_patterns(options: dict[str, object]) -> None:
    assert field(Request(f=None), 'f', is_required=True, **options) is None


def test_allowed_none_still_meets_the_choices_and_the_validator() -> None:
    assert invalid(None, valid_type=(str, type(None)), valid_values=('a',)).explain == "should be one of 'a'"
    assert invalid(None, valid_type=(str, type(None)), max_length=3,
                   validator=lambda value: value is not None).explain == 'is refused by its validator'


@pytest.mark.parametrize('options', [{'max_length': 3}, {'min_value': 0}, {'pattern': '.*'},
                                     {'valid_type': str, 'max_length': 3}])
def test_none_not_declared_is_still_judged(options: dict[str, object]) -> None:
    invalid(None, **options)


def test_allowed_none_does_not_loosen_other_values() -> None:
    invalid('abcd', valid_type=(str, type(None)), max_length=3)
    invalid(7, valid_type=(int, type(None)), max_value=3)


# --- strict --------------------------------------------------------------------------------------

@strict
def strict_action(request: Request) -> dict[str, object]:
    """A strict action."""
    title = field(request, 'title', is_required=True, valid_type=str)
    field(request, 'item', valid_type=dict, default_value={})
    if 'item' in request:
        field(request.item, 'name', valid_type=str)
        field(request['item'].owner, 'email', valid_type=str)
    for row in request.get('rows', ()):
        field(row, 'id', valid_type=int)
    return {'title': title}


@strict
def strict_without_fields(request: Request) -> dict[str, object]:
    return {}


def strict_error(function: Callable[[Request], object], body: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(Invalid) as caught:
        function(Request(body))
    return caught.value.field, caught.value.explain


def test_strict_takes_the_declared_fields() -> None:
    assert strict_action(Request(title='t')) == {'title': 't'}
    assert strict_action(Request(title='t', item={'name': 'n', 'owner': {'email': 'e'}})) == {'title': 't'}


def test_strict_refuses_other_keys_in_crud_words() -> None:
    assert strict_error(strict_action, {'title': 't', 'colour': 1}) == (
        'colour', 'not a field of this request; fields: item, title')
    assert strict_error(strict_action, {'title': 't', 'item': {'name': 'n', 'size': 1}}) == (
        'size', 'not a field of item; fields: name, owner')
    assert strict_error(strict_action, {'title': 't', 'item': {'owner': {'email': 'e', 'phone': 1}}}) == (
        'phone', 'not a field of item.owner; fields: email')
    assert strict_error(strict_without_fields, {'a': 1}) == ('a', 'not a field of this request; it takes none')


def test_strict_does_not_follow_other_objects() -> None:
    # field(row, 'id') reads from a local name: not a key of the request, and not checked.
    assert strict_error(strict_action, {'title': 't', 'rows': [{'id': 1}]})[0] == 'rows'
    assert strict_error(strict_action, {'title': 't', 'id': 1})[0] == 'id'


def test_strict_checks_before_the_fields_and_leaves_non_objects_to_them() -> None:
    assert strict_error(strict_action, {'colour': 1})[0] == 'colour'
    assert strict_error(strict_action, {'title': 't', 'item': 'text'}) == ('item', 'should be an object')


def test_strict_is_introspectable_and_keeps_the_action() -> None:
    records = declared_fields(strict_action)
    assert records.strict is True and declared_fields(action_simple).strict is False
    assert [(record.name, record.parent) for record in records] == [
        ('title', None), ('item', None), ('name', 'item'), ('email', 'item.owner'), ('id', None)]
    assert strict_action.__name__ == 'strict_action' and strict_action.__doc__ == 'A strict action.'
    assert strict_action.__module__ == __name__ and isinstance(records, Fields) and isinstance(records, list)


def test_strict_keeps_route_marks_either_way() -> None:
    from apiphant.routing import _MARK, action

    @action(name='first')
    @strict
    def outer(request: Request) -> None:
        field(request, 'a')

    @strict
    @action(name='second')
    def inner(request: Request) -> None:
        field(request, 'a')

    assert getattr(outer, _MARK)['name'] == 'first' and getattr(inner, _MARK)['name'] == 'second'
    assert declared_fields(outer).strict and declared_fields(inner).strict


def test_strict_goes_on_a_function() -> None:
    with pytest.raises(TypeError, match='@strict goes on a function'):
        strict(len)
