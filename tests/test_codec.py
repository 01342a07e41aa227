"""JSON in (strict, objects only) and out (what actions commonly return)."""
import datetime
import decimal
import json
import uuid

import pytest

from apiphant.codec import NOT_AN_OBJECT, decode, encode
from apiphant.errors import ApiError, Invalid
from apiphant.request import Request

NOT_OBJECTS: list[bytes] = [
    b'[]', b'[{}]', b'"text"', b'""', b'1', b'-1.5', b'0', b'null', b'true', b'false',
    b'{', b'}', b'{"a"}', b'{"a":}', b'{"a":1,}', b"{'a': 1}", b'{a: 1}', b'{"a": undefined}',
    b'{}x', b'{}{}', b'{} []', b'{"a": 1}\x00', b'{"a": 1} //',
    b'\xff', b'\xfe\xff', b'{"a": "\xff"}', b'{"a": "\xc3"}', b'{"a": "\xed\xa0\x80"}',
    b'\xef\xbb\xbf{}', b'\xef\xbb\xbf{"a": 1}',
    '{"a": "é"}'.encode('utf-16'), '{"a": 1}'.encode('utf-32'),
    b'{"a": NaN}', b'{"a": -NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": nan}',
    b'{"a": 1e400}', b'{"a": -1e400}', b'{"a": 01}', b'{"a": -01}', b'{"a": 1.}', b'{"a": .5}',
    b'{"a": +1}', b'{"a": 0x10}',
    b'{"a": "\\ud800"}', b'{"a": "\\udfff"}', b'{"a": "\\ud800x"}', b'{"a": "\\ud800\\u0041"}',
    b'{"\\ud800": 1}', b'{"a": "\\x41"}', b'{"a": "tab\tinside"}', b'{"a": "nl\ninside"}',
    b' ', b'\n', b'\t\r\n ', b'\x00',
]


def assert_not_an_object(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        decode(body)
    assert caught.value.status == 400
    assert caught.value.to_dict() == {'error': 'Request content should be JSON Object'}


# --- decode --------------------------------------------------------------------------------

def test_not_an_object_message() -> None:
    assert NOT_AN_OBJECT == 'Request content should be JSON Object'


@pytest.mark.parametrize('body', [b'', bytearray(), memoryview(b'')])
def test_empty_body_is_an_empty_request(body: bytes) -> None:
    request = decode(body)
    assert type(request) is Request
    assert request == {}


def test_empty_body_requests_are_not_shared() -> None:
    first = decode(b'')
    first.x = 1
    assert decode(b'') == {}


@pytest.mark.parametrize(('body', 'expected'), [
    (b'{}', {}),
    (b' {} ', {}),
    (b'\n{"a": 1}\n', {'a': 1}),
    (b'{"hello": "world"}', {'hello': 'world'}),
    (b'{"n": -1.5e3, "i": 9007199254740993, "z": 0, "t": true, "f": false, "x": null}',
     {'n': -1500.0, 'i': 9007199254740993, 'z': 0, 't': True, 'f': False, 'x': None}),
    ('{"ü": "日本", "e": "😀"}'.encode(), {'ü': '日本', 'e': '😀'}),
    (b'{"pair": "\\ud83d\\ude00", "esc": "\\u00e9\\n\\"\\\\\\/"}', {'pair': '😀', 'esc': 'é\n"\\/'}),
    (b'{"a": [1, "b", null, [2, [3]]]}', {'a': [1, 'b', None, [2, [3]]]}),
    (b'{"": 1}', {'': 1}),
])
def test_valid_objects(body: bytes, expected: dict[str, object]) -> None:
    request = decode(body)
    assert type(request) is Request
    assert request == expected


@pytest.mark.parametrize(('body', 'field', 'explain'), [
    (b'{"role": "user", "role": "admin"}', 'role', 'a key given twice in one object'),
    (b'{"id": 1, "id": 999999}', 'id', 'a key given twice in one object'),
    (b'{"t": "a:b:c", "n": 1, "n": 2}', 'n', 'a key given twice in one object'),  # colons in strings hide nothing
    (b'{"":1,"":2}', '', 'a key given twice in one object'),
    (b'{"a": {"b": 1, "b": 2}}', 'a', "a key given twice in one object: 'b'"),
    (b'{"a": [{"x": 1}, {"y": 1, "y": 1}]}', 'a', "a key given twice in one object: 'y'"),
    (b'{"a": [[{"k": {"z": 1, "z": 2}}]], "b": 2}', 'a', "a key given twice in one object: 'z'"),
    (b'{"w": "\\u003a", "a": 1, "a": 2}', 'a', 'a key given twice in one object'),  # an escaped colon
])
def test_a_key_given_twice_is_400_naming_the_field(body: bytes, field: str, explain: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode(body)
    assert caught.value.to_dict() == {'error': {'field': field, 'state': 'invalid', 'explain': explain}}


@pytest.mark.parametrize('body', [
    b'{"url": "http://x:80/a:b", "t": "12:30"}', b'{"a": {"b": "c:d"}, "b": 1}', b'{"a": 1, "b": {"a": 1}}',
    b'{"a": [{"x": 1}, {"x": 1}]}', b'{"k\\\\": ":", "\\"": 1}',
])
def test_the_same_key_in_different_objects_and_colons_in_strings_are_fine(body: bytes) -> None:
    assert decode(body) == json.loads(body)


@pytest.mark.parametrize(('body', 'key'), [
    (b'{"n": 123456789012345678901}', 'n'),
    (b'{"n": 18446744073709551616}', 'n'),
    (b'{"n": -9223372036854775809}', 'n'),
    (b'{"a": {"n": [1, [2, 99999999999999999999999]]}}', 'a'),
    (b'{"where": {"count": {"$lt": -9223372036854775809}}}', 'where'),
])
def test_an_integer_beyond_64_bits_is_400_not_a_float(body: bytes, key: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode(body)
    assert caught.value.field == key and '64 bits' in caught.value.explain


@pytest.mark.parametrize('body', [
    b'{"n": 18446744073709551615}', b'{"n": -9223372036854775808}', b'{"id": "1234567890123456789012345"}',
    b'{"f": 1.2345678901234567890123}', b'{"e": 12345678901234567890e-5}',
])
def test_integers_within_64_bits_and_long_digits_elsewhere_are_fine(body: bytes) -> None:
    assert decode(body) == json.loads(body)


def test_nesting_up_to_the_limit_is_accepted_and_deeper_is_400() -> None:
    from apiphant.codec import MAX_DEPTH
    assert decode(b'{"a":' * (MAX_DEPTH - 1) + b'[1]' + b'}' * (MAX_DEPTH - 1))
    with pytest.raises(ApiError) as caught:
        decode(b'{"a":' * MAX_DEPTH + b'[1]' + b'}' * MAX_DEPTH)
    assert caught.value.to_dict() == {'error': f'Request content is nested deeper than {MAX_DEPTH} levels'}


def test_more_values_than_the_budget_is_400() -> None:
    from apiphant.codec import MAX_VALUES
    small = b'{"a": [' + b','.join([b'[]'] * (MAX_VALUES - 2)) + b']}'  # the object, the list, its items
    assert len(decode(small).a) == MAX_VALUES - 2
    for body in (b'{"a": [' + b','.join([b'[]'] * MAX_VALUES) + b']}',  # large: counted before decoding
                 b'{"a": [' + b','.join([b'0'] * MAX_VALUES) + b']}'):
        with pytest.raises(ApiError) as caught:
            decode(body)
        assert caught.value.to_dict() == {'error': f'Request content has more than {MAX_VALUES:,} values'}


def test_commas_in_strings_do_not_count_as_values() -> None:
    from apiphant.codec import LARGE, MAX_VALUES
    body = b'{"text": "' + b',' * (MAX_VALUES + 10) + b'"}'
    assert len(body) > LARGE and decode(body).text == ',' * (MAX_VALUES + 10)


def test_a_large_body_decodes_as_a_small_one() -> None:
    from apiphant.codec import LARGE
    value = {'rows': [{'id': i, 'name': f'n{i}', 'tags': ['a', 'b']} for i in range(LARGE // 20)]}
    body = encode(value)
    assert len(body) > LARGE
    request = decode(body)
    assert request == value and type(request.rows[5]) is Request


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode(bytearray(b'{"a": 1}')) == {'a': 1}
    assert decode(memoryview(b'{"a": 1}')) == {'a': 1}


def test_nested_objects_are_requests() -> None:
    request = decode(b'{"a": {"b": {"c": 1}}}')
    assert type(request.a) is Request
    assert type(request.a.b) is Request
    assert request.a.b.c == 1


def test_objects_inside_lists_are_requests() -> None:
    request = decode(b'{"items": [{"id": 1}, [{"deep": {"er": true}}], 3]}')
    assert type(request['items'][0]) is Request
    assert request['items'][0].id == 1
    assert request['items'][1][0].deep.er is True
    assert request['items'][2] == 3


def test_lists_stay_lists() -> None:
    request = decode(b'{"a": [[1], []]}')
    assert type(request.a) is list
    assert type(request.a[0]) is list


@pytest.mark.parametrize('body', NOT_OBJECTS)
def test_not_an_object_is_400(body: bytes) -> None:
    assert_not_an_object(body)


@pytest.mark.parametrize('depth', [10, 100, 300, 500, 1_000, 5_000, 100_000])
def test_deeply_nested_objects_are_accepted_or_400(depth: int) -> None:
    body = b'{"a":' * depth + b'1' + b'}' * depth
    try:
        request = decode(body)
    except ApiError as error:
        assert error.to_dict()['error'] in (NOT_AN_OBJECT, 'Request content is nested deeper than 64 levels',
                                           'Request content has more than 100,000 values')
    else:
        assert type(request) is Request and depth <= 64


@pytest.mark.parametrize('depth', [10, 100, 300, 500, 1_000, 5_000, 100_000])
def test_deeply_nested_lists_are_accepted_or_400(depth: int) -> None:
    body = b'{"a":' + b'[' * depth + b']' * depth + b'}'
    try:
        request = decode(body)
    except ApiError as error:
        assert error.to_dict()['error'] in (NOT_AN_OBJECT, 'Request content is nested deeper than 64 levels',
                                           'Request content has more than 100,000 values')
    else:
        assert type(request) is Request and depth < 64


def test_moderate_nesting_is_accepted_with_attribute_access() -> None:
    depth = 50
    request = decode(b'{"a":' * depth + b'1' + b'}' * depth)
    for _ in range(depth - 1):
        request = request.a
    assert request.a == 1


def test_round_trip() -> None:
    value = {'a': [1, 2.5, 'x', None, True, {'b': []}], 'c': {}}
    assert decode(encode(value)) == value


# --- encode --------------------------------------------------------------------------------

def loads(data: bytes) -> object:
    return json.loads(data, parse_float=decimal.Decimal, parse_int=decimal.Decimal)


@pytest.mark.parametrize(('value', 'text'), [
    (datetime.datetime(2024, 1, 2, 3, 4, 5), '2024-01-02T03:04:05'),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, 678901), '2024-01-02T03:04:05.678901'),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), '2024-01-02T03:04:05+00:00'),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
     '2024-01-02T03:04:05+05:30'),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(-datetime.timedelta(hours=8))),
     '2024-01-02T03:04:05-08:00'),
    (datetime.date(2024, 2, 29), '2024-02-29'),
    (datetime.time(3, 4, 5), '03:04:05'),
    (datetime.time(3, 4, 5, 6), '03:04:05.000006'),
    (datetime.time(0, 0), '00:00:00'),
])
def test_dates_and_times_are_iso_8601(value: object, text: str) -> None:
    assert json.loads(encode({'at': value})) == {'at': text}
    assert json.loads(encode({'at': value}))['at'] == value.isoformat()


def test_aware_datetime_keeps_its_offset_not_converted_to_utc() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=-3))
    value = datetime.datetime(2024, 6, 1, 23, 30, tzinfo=tz)
    assert datetime.datetime.fromisoformat(json.loads(encode({'at': value}))['at']) == value
    assert json.loads(encode({'at': value}))['at'].endswith('-03:00')


@pytest.mark.parametrize('text', [
    '3.14159265358979323846264338327950288', '0.1', '-0.5', '10', '0', '-0', '0.00', '1E+2', '1E-10',
    '123456789012345678901234567890', '1.000000000000000000001', '-99999999999999999999.99',
])
def test_finite_decimal_is_a_json_number_with_all_digits(text: str) -> None:
    data = encode({'n': decimal.Decimal(text)})
    assert b'"' not in data.replace(b'"n"', b'')
    assert loads(data) == {'n': decimal.Decimal(text)}
    assert str(loads(data)['n']) == str(decimal.Decimal(text))


@pytest.mark.parametrize('text', ['NaN', '-NaN', 'sNaN', 'Infinity', '-Infinity'])
def test_non_finite_decimal_is_a_type_error(text: str) -> None:
    with pytest.raises(TypeError):
        encode({'n': decimal.Decimal(text)})


def test_decimal_inside_list_and_set() -> None:
    assert loads(encode({'a': [decimal.Decimal('1.10')], 'b': {decimal.Decimal('2.5')}})) == {
        'a': [decimal.Decimal('1.10')], 'b': [decimal.Decimal('2.5')]}


def test_uuid_is_its_string() -> None:
    value = uuid.UUID('12345678-1234-5678-1234-567812345678')
    assert json.loads(encode({'id': value})) == {'id': '12345678-1234-5678-1234-567812345678'}


@pytest.mark.parametrize(('value', 'expected'), [
    ({3, 1, 2}, [1, 2, 3]),
    (frozenset({'b', 'c', 'a'}), ['a', 'b', 'c']),
    (set(), []),
    ({2.5, -1, 0}, [-1, 0, 2.5]),
    ({(1, 'a')}, [[1, 'a']]),
])
def test_sets_are_sorted_lists(value: object, expected: list[object]) -> None:
    assert json.loads(encode({'s': value})) == {'s': expected}


@pytest.mark.parametrize('value', [{1, 'a', None}, frozenset({'x', 2, 3.5}), {True, 'b'}])
def test_sets_of_mixed_types_are_still_encoded(value: object) -> None:
    encoded = json.loads(encode({'s': value}))['s']
    assert type(encoded) is list
    assert sorted(map(repr, encoded)) == sorted(map(repr, value))


@pytest.mark.parametrize(('value', 'expected'), [((1, 2), [1, 2]), ((), []), (((1,), ('a',)), [[1], ['a']])])
def test_tuples_are_lists(value: tuple[object, ...], expected: list[object]) -> None:
    assert json.loads(encode({'t': value})) == {'t': expected}


@pytest.mark.parametrize(('value', 'expected'), [
    ({1: 'x'}, {'1': 'x'}),
    ({1: 'x', 'b': 2}, {'1': 'x', 'b': 2}),
    ({'outer': {2: [decimal.Decimal('1.5')]}}, {'outer': {'2': [1.5]}}),
    ({-7: 1, 0: 2}, {'-7': 1, '0': 2}),
])
def test_int_keys_are_string_keys(value: dict[object, object], expected: dict[str, object]) -> None:
    assert json.loads(encode(value)) == expected


def test_int_keys_match_the_json_module() -> None:
    value = {1: 'a', 2: [1, 2]}
    assert json.loads(encode(value)) == json.loads(json.dumps(value))


def test_request_encodes() -> None:
    assert encode(Request(a=1)) == b'{"a":1}'


def test_nested_requests_encode() -> None:
    value = Request({'a': {'b': [{'c': 1}, [{'d': None}]]}})
    assert type(value.a.b[0]) is Request
    assert json.loads(encode(value)) == {'a': {'b': [{'c': 1}, [{'d': None}]]}}


def test_request_with_a_method_named_key_encodes() -> None:
    assert json.loads(encode(Request(items=[1], copy=2, keys='k'))) == {'items': [1], 'copy': 2, 'keys': 'k'}


def test_decoded_request_encodes_back() -> None:
    body = b'{"a":{"b":[{"c":1}]},"u":"\xc3\xa9"}'
    assert encode(decode(body)) == body


@pytest.mark.parametrize(('value', 'seconds'), [
    (datetime.timedelta(seconds=90), 90),
    (datetime.timedelta(seconds=1, microseconds=500000), 1.5),
    (datetime.timedelta(days=1), 86400),
    (datetime.timedelta(), 0),
    (datetime.timedelta(days=-1), -86400),
])
def test_timedelta_is_seconds(value: datetime.timedelta, seconds: float) -> None:
    assert json.loads(encode({'d': value})) == {'d': seconds}


def _function() -> None:
    pass


class _Thing:
    pass


@pytest.mark.parametrize('value', [
    object(), _function, len, lambda: 1, _Thing(), _Thing, b'bytes', bytearray(b'x'),
    {object()}, [object()], complex(1, 2), Exception('x'), range(3), iter([1]),
])
def test_non_encodable_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        encode({'v': value})


@pytest.mark.parametrize('value', [object(), (1, 2), frozenset()])
def test_non_encodable_key_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        encode({value: 1})


@pytest.mark.parametrize('value', [2**64, -(2**63) - 1, 10**30, -(10**30)])
def test_integer_beyond_64_bits_is_a_type_error(value: int) -> None:
    with pytest.raises(TypeError):
        encode({'n': value})


@pytest.mark.parametrize('value', [2**64 - 1, -(2**63), 2**53 + 1, 0])
def test_integers_within_64_bits_keep_every_digit(value: int) -> None:
    assert encode({'n': value}) == b'{"n":%d}' % value


def test_encode_returns_compact_utf8_bytes() -> None:
    assert encode({'é': '😀', 'a': [1, 2]}) == '{"é":"😀","a":[1,2]}'.encode()


def test_encode_keeps_key_order() -> None:
    assert encode({'b': 1, 'a': 2}) == b'{"b":1,"a":2}'
