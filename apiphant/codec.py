"""JSON in and out of the wire, with orjson: strict on input, and able to
encode what actions commonly return.

Strict on input: a UTF-8 JSON object, no NaN, no 1e400, no lone surrogates,
no key given twice in an object (the last would silently win), no integer
beyond 64 bits (orjson would make it a float), at most MAX_DEPTH levels of
nesting and MAX_VALUES values. A body larger than LARGE is counted before it
is decoded, and large bodies take turns: one at a time, each after what is
ready to run, so that the tens of milliseconds each costs the event loop
delay other clients by one of them at most, not by all (a thread would not
help: orjson and the walk hold the GIL).
"""
import datetime
import decimal
import json
import re

import orjson

from apiphant.errors import ApiError, Invalid
from apiphant.request import Request, wrap_nested

__all__ = ['decode', 'encode', 'NOT_AN_OBJECT', 'MAX_DEPTH', 'MAX_VALUES', 'LARGE']

NOT_AN_OBJECT = 'Request content should be JSON Object'
MAX_DEPTH = 64
MAX_VALUES = 100_000
LARGE = 64 << 10

_loads = orjson.loads
_dumps = orjson.dumps
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS
_new = dict.__new__
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_LONG_NUMBER = re.compile(rb'\d{19}').search  # 64 bits need 19 digits or 20
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what orjson keeps exact


def decode(body):
    """The request body as a Request; an empty body is ``{}``. Anything but
    a JSON object within the limits above is a 400."""
    if not body:
        return Request()
    if type(body) is not bytes:  # a bytearray or memoryview, from a WSGI server
        body = bytes(body)
    if len(body) > LARGE:
        return _take_turn(_decode_large, body)
    return _decode(body)


def _decode(body):
    try:
        value = _loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, NOT_AN_OBJECT) from None
    if type(value) is not dict:
        raise ApiError(400, NOT_AN_OBJECT)
    request = _new(Request)
    request |= value  # |= costs less than a call of dict.update
    keys = len(value)
    for item in value.values():
        kind = type(item)
        if kind is dict or kind is list:
            keys, values, depth = wrap_nested(request)
            if depth > MAX_DEPTH or values > MAX_VALUES:
                _too_much(depth, values)
            break
    # Each key has one colon after it, outside strings. More colons than keys:
    # some are in strings, or a key came twice (orjson kept the last). With
    # no escape in the body, the strings hold as many colons encoded again as
    # they did on the wire, so a second count tells; else count without them.
    colons = body.count(b':')
    if colons != keys:
        if b'\\' in body:
            doubtful = _STRING.sub(b'""', body).count(b':') != keys
        else:
            doubtful = _dumps(value).count(b':') != colons
        if doubtful:
            _check_keys_and_numbers(body)
    if len(body) > 20 and _LONG_NUMBER(body) is not None:
        _check_keys_and_numbers(body)
    return request


def _decode_large(body):
    """decode() of a large body, in a thread: its values are counted before
    orjson is let loose on it. Each non-empty object or list holds one value
    more than its commas, so with the strings taken out the count is exact
    (a first bound, from the bytes as they are, is enough for most)."""
    if _values(body) > MAX_VALUES:
        plain = _STRING.sub(b'""', body).translate(None, b' \t\r\n')
        if _values(plain) - plain.count(b'[]') - plain.count(b'{}') > MAX_VALUES:
            _too_much(0, MAX_VALUES + 1)
    return _decode(body)


def _values(text):
    return text.count(b',') + text.count(b'[') + text.count(b'{')


_turns = []  # the semaphore of large bodies, made at first use (after gevent's patch)


def _take_turn(function, body):
    """``function(body)`` once no other large body is decoded and what is
    ready to run (small requests) has run."""
    import gevent
    if not _turns:
        import gevent.lock
        _turns.append(gevent.lock.Semaphore())
    with _turns[0]:
        gevent.idle()
        return function(body)


def _too_much(depth, values):
    if depth > MAX_DEPTH:
        raise ApiError(400, f'Request content is nested deeper than {MAX_DEPTH} levels')
    raise ApiError(400, f'Request content has more than {MAX_VALUES:,} values')


class _BigInt(int):
    """An integer orjson would not keep exact, met while looking closer."""


class _Doubtful(dict):
    """An object holding a problem (a key given twice, an integer beyond 64
    bits), at any depth: the top-level key that holds it is the field named."""

    problem = ''


_TWICE = 'a key given twice in one object'
_BIG = 'an integer beyond 64 bits (send it as a string)'


def _check_keys_and_numbers(body):
    """Raise the 400 of a key given twice or of an integer beyond 64 bits,
    naming the top-level field that holds it; the slow path, for the bodies
    the fast checks doubt."""
    def parse_int(text):
        number = int(text)
        return _BigInt(number) if not _INT_RANGE[0] <= number <= _INT_RANGE[1] else number

    def check(pairs):
        found = dict(pairs)
        problem = _TWICE + f': {_first_twice(pairs)!r}' if len(found) < len(pairs) else next(
            (problem for problem in map(_problem, found.values()) if problem), '')
        if problem:
            found = _Doubtful(found)
            found.problem = problem
        return found

    top = json.loads(body, object_pairs_hook=lambda pairs: pairs, parse_int=parse_int)
    seen = set()
    for key, value in top:
        if key in seen:
            raise Invalid(key, _TWICE)
        seen.add(key)
        value = _rebuild(value, check)
        problem = _problem(value)
        if problem:
            raise Invalid(key, problem)


def _rebuild(value, check):
    """The inner objects, made by ``check`` from the pairs json gave."""
    if type(value) is list:
        if value and type(value[0]) is tuple:  # an object's pairs (an object is never a list of tuples in JSON)
            return check([(key, _rebuild(item, check)) for key, item in value])
        return [_rebuild(item, check) for item in value]
    return value


def _first_twice(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return None


def _problem(value):
    kind = type(value)
    if kind is _BigInt:
        return _BIG
    if kind is _Doubtful:
        return value.problem
    if kind is list:
        return next((problem for problem in map(_problem, value) if problem), '')
    return ''


def encode(value):
    """JSON bytes of a response dict. datetime and date are ISO 8601 (by
    orjson), a finite Decimal is a JSON number with all its digits, a set
    is an array, a dict with int keys has string keys as in ``json``.
    Raises TypeError for a value that cannot be encoded."""
    try:
        return _dumps(value, default=_default)
    except TypeError:
        return _dumps(value, default=_default, option=_NON_STR_KEYS)


def _default(value):
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise TypeError(f'{value} is not a JSON number')
        return orjson.Fragment(str(value).encode())
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    raise TypeError(f'{type(value).__name__} is not JSON serializable')
