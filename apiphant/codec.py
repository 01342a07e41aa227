"""JSON in and out of the wire, with orjson: strict on input (no NaN, no
1e400, no lone surrogates), and able to encode what actions commonly return."""
import datetime
import decimal

import orjson

from apiphant.errors import ApiError
from apiphant.request import Request, from_dict

__all__ = ['decode', 'encode', 'NOT_AN_OBJECT']

NOT_AN_OBJECT = 'Request content should be JSON Object'

_loads = orjson.loads
_dumps = orjson.dumps
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


def decode(body):
    """The request body as a Request; an empty body is ``{}``. Anything but
    a UTF-8 JSON object is a 400."""
    if not body:
        return Request()
    try:
        value = _loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, NOT_AN_OBJECT) from None
    if type(value) is not dict:
        raise ApiError(400, NOT_AN_OBJECT)
    return from_dict(value)


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
