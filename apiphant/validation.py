"""Validation of request fields, with 0.2's ``field()``.

``field(request, 'id', is_required=True, valid_type=int)`` returns the value
or raises ``Missing``/``Invalid``. The options are plain keyword literals, so
the code stays the spec: ``declared_fields(action)`` reads the ``field()``
calls of an action back as ``Field`` records, from which the API description
is made without declaring anything twice.

Rules:

1. An ``Invalid`` explains itself in the words generated CRUD uses ("should
   be an integer", "should be at most 200 characters long", "should be one
   of 'a', 'b'"), unless the action gives its own ``explain``, which wins. A
   ``Missing`` says no more than its state, as CRUD's does, unless the action
   gives an ``explain``.
2. Where ``valid_type`` admits ``None`` (``(str, type(None))``) or the
   choices hold it, a null skips the lengths, the range and the pattern; the
   choices and the validator still judge it.
3. Where ``valid_type`` wants an int and not a float, a whole float
   (``100.0``, up to 2**53) is taken as that int, as CRUD takes it.
4. ``@strict`` on an action refuses any key its ``field()`` calls do not
   name, at the top of the request and in the objects read as
   ``field(request.item, ...)``, in the words of CRUD: "not a field of this
   request; fields: ...". ``declared_fields(action).strict`` says so.
"""
import ast
import functools
import inspect
import re
from dataclasses import dataclass, fields as dataclass_fields

from apiphant.errors import (  # the typed errors, where 0.2 had them
    ApiError, BadRequest, Conflict, Forbidden, Invalid, MethodNotAllowed, Missing, NotFound,
    PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnprocessableEntity,
    UnsupportedMediaType)

__all__ = ['field', 'Field', 'Fields', 'declared_fields', 'strict', 'ApiError', 'BadRequest', 'Missing',
           'Invalid', 'Unauthorized', 'Forbidden', 'NotFound', 'MethodNotAllowed', 'Conflict',
           'PayloadTooLarge', 'UnsupportedMediaType', 'UnprocessableEntity', 'TooManyRequests',
           'ServiceUnavailable']

_UNSET = object()
_STRICT = '__apiphant_strict__'


@dataclass(frozen=True)
class Field:
    """What one ``field()`` call declares; ``check()`` is ``field()``."""
    name: str
    is_required: bool = False
    default_value: object = None
    valid_value: object = None
    valid_type: object = None
    valid_length: int = None
    max_length: int = None
    explain: object = None
    min_length: int = None
    min_value: object = None
    max_value: object = None
    valid_values: object = None
    pattern: str = None
    validator: object = None
    parent: str = None  # 'item' for field(request.item, 'name'), when read from source

    def check(self, request):
        if not isinstance(request, dict):
            raise self._invalid('should be a field of an object')
        value = request.get(self.name, _UNSET)
        if value is _UNSET:
            if self.is_required:
                raise Missing(self.name, self.explain)
            return self.default_value
        if type(value) is float and self.valid_type is not None:
            value = _whole(value, self.valid_type)
        if self.valid_value is not None and not _same(value, self.valid_value):
            raise self._invalid(f'should be {_show(self.valid_value)}')
        if self.valid_type is not None and not _is_type(value, self.valid_type):
            raise self._invalid('should be ' + _type_words(self.valid_type))
        if value is not None or not self._admits_none():
            self._check_bounds(value)
        if self.valid_values is not None and not any(_same(value, choice) for choice in self.valid_values):
            raise self._invalid(_choices_words(self.valid_values))
        if self.validator is not None:
            try:
                valid = self.validator(value)
            except (ValueError, TypeError) as error:
                raise self._invalid(str(error) or self._refused()) from None
            if valid is False:
                raise self._invalid(self._refused())
        return value

    def _check_bounds(self, value):
        if self.valid_length is not None or self.max_length is not None or self.min_length is not None:
            try:
                length = len(value)
            except TypeError:
                raise self._invalid('should be a string, a list or an object') from None
            text = isinstance(value, str)
            if self.valid_length is not None and length != self.valid_length:
                raise self._invalid(_length_words('exactly', self.valid_length, text))
            if self.max_length is not None and length > self.max_length:
                raise self._invalid(_length_words('at most', self.max_length, text))
            if self.min_length is not None and length < self.min_length:
                raise self._invalid('should not be empty' if self.min_length == 1
                                    else _length_words('at least', self.min_length, text))
        if self.min_value is not None or self.max_value is not None:
            try:
                if type(value) is bool:
                    raise TypeError
                out = (self.min_value is not None and value < self.min_value
                       or self.max_value is not None and value > self.max_value)
            except TypeError:
                raise self._invalid(self._range_words(kind=True)) from None
            if out:
                raise self._invalid(self._range_words())
        if self.pattern is not None:
            pattern = getattr(self.pattern, 'pattern', self.pattern)
            if not isinstance(value, str):
                raise self._invalid(f'should be a string matching the pattern {pattern}')
            if not re.fullmatch(self.pattern, value):
                raise self._invalid(f'should match the pattern {pattern}')

    def _invalid(self, words):
        return Invalid(self.name, words if self.explain is None else self.explain)

    def _admits_none(self):
        kinds = self.valid_type if isinstance(self.valid_type, tuple) else (self.valid_type,)
        return type(None) in kinds or (self.valid_values is not None
                                       and any(choice is None for choice in self.valid_values))

    def _range_words(self, kind=False):
        low, high = self.min_value, self.max_value
        if kind:
            bound = low if low is not None else high
            if isinstance(bound, (int, float)) and not isinstance(bound, bool):
                return 'should be a number'
            if isinstance(bound, str):
                return 'should be a string'
        if low is not None and high is not None:
            return f'should be from {_show(low)} to {_show(high)}'
        return f'should be at least {_show(low)}' if low is not None else f'should be at most {_show(high)}'

    def _refused(self):
        name = getattr(self.validator, '__name__', '<lambda>')
        return 'is refused by its validator' if name == '<lambda>' else f'is refused by {name}'


def _same(value, expected):
    """Equal, and a JSON boolean never stands for a number (``true`` is not ``1``)."""
    return value == expected and (type(value) is bool) == (type(expected) is bool)


_EXACT_FLOAT = 2 ** 53  # the largest whole float with every integer below it


def _whole(value, valid_type):
    """100.0 as 100 where an int is wanted and a float is not: JSON Schema and
    JavaScript cannot tell them apart, and generated CRUD takes it too."""
    types = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    if int in types and float not in types and value.is_integer() and abs(value) <= _EXACT_FLOAT:
        return int(value)
    return value


def _is_type(value, valid_type):
    """isinstance, except that a JSON boolean is not a number and an int is a float."""
    types = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    if type(value) is bool:
        return bool in types
    if type(value) is int and float in types:
        return True
    return isinstance(value, types)


# CRUD's words for the kinds a column holds (apiphant.crud.columns), and JSON's for the others.
_TYPE_WORDS = {int: 'an integer', float: 'a number', str: 'a string', bool: 'true or false',
               dict: 'an object', list: 'a list', tuple: 'a list', type(None): 'null'}


def _type_words(valid_type):
    """'an integer', 'a string or null': what ``_is_type`` lets through."""
    kinds = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    if float in kinds:
        kinds = tuple(kind for kind in kinds if kind is not int)  # a number covers an integer
    words = []
    for kind in kinds:
        word = _TYPE_WORDS.get(kind) or f'a {getattr(kind, "__name__", kind)}'
        if kind is bool and len(kinds) > 1:
            word = 'a boolean'
        if word not in words:
            words.append(word)
    return ' or '.join(words)


def _length_words(bound, length, text):
    """'should be at most 200 characters long' (CRUD's words) or 'should have exactly 2 items'."""
    noun = ('character' if text else 'item') + ('' if length == 1 else 's')
    return f'should be {bound} {length} {noun} long' if text else f'should have {bound} {length} {noun}'


def _choices_words(choices):
    choices = list(choices)
    if not choices:
        return 'has no valid value'
    return 'should be one of ' + ', '.join(map(_show, choices))


def _show(value):
    """A value as CRUD shows it (repr), with JSON's true, false and null."""
    if value is True or value is False or value is None:
        return {True: 'true', False: 'false', None: 'null'}[value]
    return repr(value)


def field(request, field_name, is_required=False, default_value=None, valid_value=None,
          valid_type=None, valid_length=None, max_length=None, explain=None, **more):
    """The value of ``request[field_name]`` (or ``default_value`` when absent),
    checked against the options; ``Missing`` or ``Invalid`` otherwise.

    0.2's options: is_required, default_value, valid_value, valid_type,
    valid_length, max_length, explain. More: min_length, min_value,
    max_value, valid_values (choices), pattern (a whole-string regex),
    validator (a callable; False or ValueError means invalid).
    """
    return Field(field_name, is_required, default_value, valid_value, valid_type,
                 valid_length, max_length, explain, **more).check(request)


class Fields(list):
    """The ``Field`` records of an action, in source order; ``strict`` is
    True when the action refuses other keys (``@strict``)."""

    strict = False


def declared_fields(function):
    """The ``Field`` records of the ``field()`` calls in ``function``'s source,
    in order, as a ``Fields`` list. Options that are not literals (or names of
    types and functions the module can see) are left as None."""
    found = Fields(record for record, _ in _field_calls(function))
    found.strict = bool(getattr(function, _STRICT, False))
    return found


def strict(function):
    """``@strict``: the action refuses a key that none of its ``field()``
    calls names (written as a literal), as generated CRUD does: ``Invalid``
    on the key, "not a field of this request; fields: a, b". Objects read as
    ``field(request.item, 'name')`` are checked the same way; fields read
    from anything else (``field(item, ...)``, ``request['rows'][0]``) are
    not followed."""
    if not inspect.isfunction(function):
        raise TypeError(f'@strict goes on a function, not on {function!r}')
    objects = {(): []}  # the path of an object in the request -> the keys it may hold
    for record, path in _field_calls(function):
        if path is None:
            continue
        for depth in range(len(path)):  # request.item.owner: item and owner are keys too
            names = objects.setdefault(path[:depth], [])
            if path[depth] not in names:
                names.append(path[depth])
        names = objects.setdefault(path, [])
        if record.name not in names:
            names.append(record.name)
    top, nested = frozenset(objects.pop(()) or ()), _explained(objects)
    top_words = 'not a field of this request; ' + (
        f'fields: {", ".join(sorted(top))}' if top else 'it takes none')

    @functools.wraps(function)
    def checked(request):
        for key in request:
            if key not in top:
                raise Invalid(key, top_words)
        for path, names, words in nested:
            value = request
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, dict):
                for key in value:
                    if key not in names:
                        raise Invalid(key, words)
        return function(request)

    setattr(checked, _STRICT, True)
    return checked


def _explained(objects):
    return tuple((path, frozenset(names), f'not a field of {".".join(path)}; fields: {", ".join(sorted(names))}')
                 for path, names in objects.items())


_POSITIONAL = [f.name for f in dataclass_fields(Field)][:8]


def _field_calls(function):
    """``(Field, path)`` for each ``field()`` call of ``function``'s source, in
    order; ``path`` is where in the request the call reads (``()`` for
    ``field(request, ...)``, ``('item',)`` for ``field(request.item, ...)``
    or ``field(request['item'], ...)``), None when it reads from anything else."""
    function = inspect.unwrap(function) if inspect.isfunction(function) else function
    if not inspect.isfunction(function):
        return []
    try:
        source = inspect.getsource(function)
        # An indented (nested) function parses inside a block; a fragment
        # (a lambda on a continuation line) does not parse at all.
        tree = ast.parse('if 1:\n' + source if source[:1].isspace() else source)
    except (OSError, TypeError, SyntaxError):
        return []
    namespace = {**vars(__import__('builtins')), **function.__globals__}
    parameters = list(inspect.signature(function).parameters)
    request_name = parameters[0] if parameters else None
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _called_name(node.func) == 'field' and node.args):
            continue
        values = {}
        for key, arg in zip(_POSITIONAL, node.args[1:]):
            values[key] = _evaluate(arg, namespace)
        for keyword in node.keywords:
            key = 'name' if keyword.arg == 'field_name' else keyword.arg
            if key in Field.__dataclass_fields__ and key != 'parent':
                values[key] = _evaluate(keyword.value, namespace)
        if isinstance(values.get('name'), str):
            path = _path(node.args[0], request_name)
            if path is not None:
                values['parent'] = '.'.join(path) or None
            else:  # not read from the request parameter: the dotted tail as written
                parent = ast.unparse(node.args[0])
                values['parent'] = parent.split('.', 1)[1] if '.' in parent else None
            found.append((node.lineno, node.col_offset, Field(**values), path))
    return [(record, path) for _, _, record, path in sorted(found, key=lambda item: item[:2])]


def _path(node, request_name):
    """The keys from the request to the object ``node`` reads, or None."""
    keys = []
    while True:
        if isinstance(node, ast.Name):
            return tuple(reversed(keys)) if node.id == request_name else None
        if isinstance(node, ast.Attribute):
            keys.append(node.attr)
            node = node.value
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
              and isinstance(node.slice.value, str)):
            keys.append(node.slice.value)
            node = node.value
        else:
            return None


def _called_name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _evaluate(node, namespace):
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    try:
        return eval(compile(ast.Expression(node), '<field>', 'eval'), {'__builtins__': {}}, namespace) \
            if _is_plain_reference(node) else None
    except Exception:
        return None


def _is_plain_reference(node):
    """A name, a dotted name or a tuple of those: ``int``, ``(int, float)``, ``re.I``."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return _is_plain_reference(node.value)
    if isinstance(node, ast.Tuple):
        return all(_is_plain_reference(item) for item in node.elts)
    return False
