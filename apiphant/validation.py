"""Validation of request fields, with 0.2's ``field()``.

``field(request, 'id', is_required=True, valid_type=int)`` returns the value
or raises ``Missing``/``Invalid``. The options are plain keyword literals, so
the code stays the spec: ``declared_fields(action)`` reads the ``field()``
calls of an action back as ``Field`` records, from which the API description
is made without declaring anything twice.
"""
import ast
import inspect
import re
from dataclasses import dataclass, fields as dataclass_fields

from apiphant.errors import (  # the typed errors, where 0.2 had them
    ApiError, BadRequest, Conflict, Forbidden, Invalid, MethodNotAllowed, Missing, NotFound,
    PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnprocessableEntity)

__all__ = ['field', 'Field', 'declared_fields', 'ApiError', 'BadRequest', 'Missing', 'Invalid',
           'Unauthorized', 'Forbidden', 'NotFound', 'MethodNotAllowed', 'Conflict',
           'PayloadTooLarge', 'UnprocessableEntity', 'TooManyRequests', 'ServiceUnavailable']

_UNSET = object()


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
        name, explain = self.name, self.explain
        if not isinstance(request, dict):
            raise Invalid(name, explain)
        value = request.get(name, _UNSET)
        if value is _UNSET:
            if self.is_required:
                raise Missing(name, explain)
            return self.default_value
        if self.valid_value is not None and not _same(value, self.valid_value):
            raise Invalid(name, explain)
        if self.valid_type is not None and not _is_type(value, self.valid_type):
            raise Invalid(name, explain)
        if self.valid_length is not None or self.max_length is not None or self.min_length is not None:
            try:
                length = len(value)
            except TypeError:
                raise Invalid(name, explain) from None
            if (self.valid_length is not None and length != self.valid_length
                    or self.max_length is not None and length > self.max_length
                    or self.min_length is not None and length < self.min_length):
                raise Invalid(name, explain)
        if self.min_value is not None or self.max_value is not None:
            if type(value) is bool:
                raise Invalid(name, explain)
            try:
                if (self.min_value is not None and value < self.min_value
                        or self.max_value is not None and value > self.max_value):
                    raise Invalid(name, explain)
            except TypeError:
                raise Invalid(name, explain) from None
        if self.valid_values is not None and not any(_same(value, choice) for choice in self.valid_values):
            raise Invalid(name, explain)
        if self.pattern is not None and not (isinstance(value, str) and re.fullmatch(self.pattern, value)):
            raise Invalid(name, explain)
        if self.validator is not None:
            try:
                valid = self.validator(value)
            except (ValueError, TypeError) as error:
                raise Invalid(name, explain if explain is not None else str(error)) from None
            if valid is False:
                raise Invalid(name, explain)
        return value


def _same(value, expected):
    """Equal, and a JSON boolean never stands for a number (``true`` is not ``1``)."""
    return value == expected and (type(value) is bool) == (type(expected) is bool)


def _is_type(value, valid_type):
    """isinstance, except that a JSON boolean is not a number and an int is a float."""
    types = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    if type(value) is bool:
        return bool in types
    if type(value) is int and float in types:
        return True
    return isinstance(value, types)


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


_POSITIONAL = [f.name for f in dataclass_fields(Field)][:8]


def declared_fields(function):
    """The ``Field`` records of the ``field()`` calls in ``function``'s source,
    in order. Options that are not literals (or names of types and functions
    the module can see) are left as None."""
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
            parent = ast.unparse(node.args[0])
            values['parent'] = parent.split('.', 1)[1] if '.' in parent else None
            found.append((node.lineno, node.col_offset, Field(**values)))
    return [record for _, _, record in sorted(found, key=lambda item: item[:2])]


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
