"""The ``where`` language, ``sort_by`` and paging: JSON compiled to SQLAlchemy
clauses, as pure functions of the request and the fields a table allows; and
the same where compiled to a Python predicate of a row (``compile_match``),
which selects the rows the SQL selects.

Invariants, each pinned by tests:

- Every value is bound as a parameter, after its column's kind parsed it.
- Every identifier is a key of ``fields``, the table's allow-list, and
  SQLAlchemy quotes it; anything else is an ``Invalid`` (400) naming the
  request field.
- Limits (depth, number of conditions, list and pattern sizes) are checked
  while compiling, so an oversized query is a 400, never a slow query.
- Conditions have two values: ``$not`` is the exact complement of what it
  negates, null fields included.
- One walk (``_Compiler``) checks a where for both compilers, which differ
  only in what they build (``_SQL``, ``_Python``); each operator carries its
  SQL and its Python meaning side by side in ``OPERATORS``.
"""
import base64
import datetime
import json
import re
from dataclasses import dataclass

import sqlalchemy as sa

from apiphant.errors import Invalid
from apiphant.crud.columns import INT64_MAX

__all__ = ['Operator', 'OPERATORS', 'LOGICAL', 'Limits', 'compile_where', 'compile_match', 'Match',
           'SortKey', 'sort_keys', 'order_by', 'cursor', 'cursor_values', 'after', 'paging']

LOGICAL = ('$and', '$or', '$not')


def _short(name):
    text = repr(name)
    return text if len(text) <= 40 else text[:37] + '...'


@dataclass(frozen=True)
class Limits:
    max_depth: int = 6         # nesting of $and, $or, $not
    max_conditions: int = 32   # operators applied to fields, in one where
    max_list: int = 100        # values of one $in or $nin
    max_text: int = 1000       # characters of a string compared with
    max_pattern: int = 200     # characters of a $like or $ilike pattern
    max_wildcards: int = 8     # % in one pattern: each one multiplies LIKE's backtracking
    max_sort_keys: int = 3     # fields of one sort_by


@dataclass(frozen=True)
class Operator:
    """``takes`` says what the operator's argument is:

    - ``value``: a value of the field's kind, or null;
    - ``scalar``: a value of the field's kind, not null;
    - ``list``: a list of such values;
    - ``bool``: true or false;
    - ``pattern``, ``text``: a string, and the field is text.

    ``build(sql_column, argument)`` is its SQL clause; ``match(argument,
    dialect)`` its Python meaning, a predicate of the field's value (None
    for null) true exactly when the clause is true on that dialect: where
    SQL finds a condition unknown (a null compared), it is false.
    """
    name: str
    takes: str
    build: object
    match: object
    meaning: str


def _eq(column, value):
    return column.is_(None) if value is None else column == value


def _ne(column, value):
    return column.is_not(None) if value is None else column.is_distinct_from(value)


def _is_null(field):
    return field is None


def _is_not_null(field):
    return field is not None


def _equal_to(value, dialect):
    return _is_null if value is None else lambda field: field == value  # null == value is False


def _distinct_from(value, dialect):
    return _is_not_null if value is None else lambda field: field != value  # null != value is True


def _one_of(values, dialect):
    values = frozenset(values)  # empty: false, null fields too (NULL IN () is false)
    return lambda field: field in values


def _none_of(values, dialect):
    values = frozenset(values)
    return lambda field: field not in values


def _like(pattern, dialect):
    match = _like_regex(pattern).match
    return lambda field: field is not None and match(field) is not None


def _ilike(pattern, dialect):
    lower = _LOWER[dialect]
    match = _like_regex(lower(pattern)).match
    return lambda field: field is not None and match(lower(field)) is not None


def _contains(text, dialect):
    return lambda field: field is not None and text in field


def _icontains(text, dialect):
    lower = _LOWER[dialect]
    text = lower(text)
    return lambda field: field is not None and text in lower(field)


OPERATORS = {operator.name: operator for operator in (
    Operator('$eq', 'value', _eq, _equal_to, 'equal; null matches a null field (a plain value means $eq)'),
    Operator('$ne', 'value', _ne, _distinct_from, 'not equal; a null field is not equal to any value'),
    Operator('$lt', 'scalar', lambda c, v: c < v, lambda v, d: lambda f: f is not None and f < v, 'less than'),
    Operator('$le', 'scalar', lambda c, v: c <= v, lambda v, d: lambda f: f is not None and f <= v,
             'less than or equal'),
    Operator('$gt', 'scalar', lambda c, v: c > v, lambda v, d: lambda f: f is not None and f > v, 'greater than'),
    Operator('$ge', 'scalar', lambda c, v: c >= v, lambda v, d: lambda f: f is not None and f >= v,
             'greater than or equal'),
    Operator('$in', 'list', lambda c, v: c.in_(v), _one_of, 'equal to one of a list of values'),
    Operator('$nin', 'list', lambda c, v: sa.or_(c.is_(None), c.not_in(v)), _none_of,
             'equal to none of a list of values (a null field is not in the list)'),
    Operator('$exists', 'bool', lambda c, v: c.is_not(None) if v else c.is_(None),
             lambda v, d: _is_not_null if v else _is_null, 'true: the field is not null; false: it is null'),
    Operator('$like', 'pattern', lambda c, v: c.like(v, escape='\\'), _like,
             'SQL LIKE, case-sensitive: % any characters, _ one, \\ escapes'),
    Operator('$ilike', 'pattern', lambda c, v: c.ilike(v, escape='\\'), _ilike, '$like, case-insensitive'),
    Operator('$contains', 'text', lambda c, v: c.contains(v, autoescape=True), _contains,
             'contains the string, case-sensitive (no wildcards)'),
    Operator('$icontains', 'text', lambda c, v: c.icontains(v, autoescape=True), _icontains,
             '$contains, case-insensitive'),
)}


def _negate(clause):
    # NOT of a null is null, which WHERE drops: coalesce makes $not the complement.
    return sa.not_(sa.func.coalesce(clause, sa.false()))


# Case folding as each database's lower() does it; ILIKE is lower() LIKE
# lower() in both. Both fold one character into one character, so that _
# still matches one.

def _lower_ascii(text):
    """SQLite's lower() (without ICU): A-Z only. bytes.lower() folds those
    alone, and UTF-8 spells any other character in bytes above them."""
    return text.lower() if text.isascii() else text.encode('utf-8', 'surrogatepass').lower().decode(
        'utf-8', 'surrogatepass')


def _lower_simple(text):
    """PostgreSQL's lower() on a UTF-8 database whose ctype is C.UTF-8:
    each character's simple lowercase (glibc's towlower). Python's
    str.lower() differs from it on two characters only: İ (i and a
    combining dot, two characters) and Σ (final ς by context)."""
    if text.isascii():
        return text.lower()
    return text.replace('\u0130', 'i').replace('\u03a3', '\u03c3').lower()


_LOWER = {'sqlite': _lower_ascii, 'postgresql': _lower_simple}  # a dialect's name: its lower()


def _like_regex(pattern):
    """A regular expression that matches, from the start, the texts LIKE
    ``pattern`` matches (``\\`` escapes; % any characters, _ one). The
    pieces between two % have a fixed length: each one but the last takes
    the first place it fits, and keeps it (an atomic group), which leaves
    the most room to the pieces after it; so no text makes it backtrack
    more than text × pattern, whatever the number of %."""
    pieces, piece, characters = [], [], iter(pattern)
    for character in characters:
        if character == '%':
            pieces.append(''.join(piece))
            piece = []
        elif character == '_':
            piece.append('.')
        else:  # the checks refuse a pattern that ends with its escape
            piece.append(re.escape(next(characters) if character == '\\' else character))
    pieces.append(''.join(piece))
    if len(pieces) > 1:
        pieces = [pieces[0], *(f'(?>.*?{piece})' for piece in pieces[1:-1] if piece), '.*' + pieces[-1]]
    return re.compile(''.join(pieces) + r'\Z', re.DOTALL)


def compile_where(where, fields, limits=Limits()):
    """The clause of a where object, or None for no condition. ``fields``
    maps the names a client may query to ``(sql column, Column)``."""
    if where is None:
        return None
    return _Compiler(fields, limits, _SQL).where(where, 1)


def compile_match(where, fields, limits=Limits(), dialect='sqlite'):
    """The ``Match`` of a where object, or None for no condition: what
    ``compile_where`` selects on ``dialect`` (``'sqlite'`` or
    ``'postgresql'``), as a predicate of a row. The same checks refuse the
    same wheres with the same ``Invalid``.

    The dialects differ in case folding only ($ilike, $icontains: SQLite
    folds A-Z, PostgreSQL every letter). Text compares by code point, as
    Python's str does: SQLite's binary collation, and PostgreSQL's under
    the C or C.UTF-8 collation (a database made with another, en_US.UTF-8
    say, orders text by its locale, and $lt, $le, $gt, $ge on text may then
    disagree with a Match; so may $ilike under a Turkish ctype or ICU)."""
    if dialect not in _LOWER:
        raise ValueError(f'dialect should be one of {", ".join(_LOWER)}, not {dialect!r}')
    if where is None:
        return None
    test, keys = _Compiler(fields, limits, _Python(dialect)).where(where, 1)
    return Match(test, keys)


class Match:
    """``match(row)``: whether ``SELECT ... WHERE`` the where selects
    ``row``, a dict of the values the database driver answers (through
    SQLAlchemy: str, int, float, bool, None, an aware UTC datetime, a date)
    by field name, holding at least the fields the where names.

    ``keys``: ``{name: frozenset(values)}``, conditions of equality every
    matching row meets (``row[name] in keys[name]``): a value, ``$eq`` or
    ``$in`` at the top of the where or under a top ``$and``. A caller can
    index many matches by them; a match without keys is in no index.
    ``test`` is the predicate itself, one call fewer.
    """

    __slots__ = ('test', 'keys')

    def __init__(self, test, keys):
        self.test, self.keys = test, keys

    def __call__(self, row):
        return self.test(row)

    def __repr__(self):
        return f'Match(keys={self.keys!r})'


class _SQL:
    """What ``_Compiler`` builds for ``compile_where``: SQLAlchemy clauses."""

    @staticmethod
    def condition(operator, name, sql_column, argument):
        return operator.build(sql_column, argument)

    @staticmethod
    def every(parts):
        return sa.and_(*parts)

    @staticmethod
    def some(parts):
        return sa.or_(*parts)

    negate = staticmethod(_negate)
    true = staticmethod(sa.true)


def _always(row):
    return True


class _Python:
    """What ``_Compiler`` builds for ``compile_match``: ``(test, keys)``,
    a predicate of a row and the equalities it implies (``Match.keys``)."""

    def __init__(self, dialect):
        self.dialect = dialect

    def condition(self, operator, name, sql_column, argument):
        test = operator.match(argument, self.dialect)
        keys = {}
        if operator.name == '$eq' and argument is not None:
            keys = {name: frozenset((argument,))}
        elif operator.name == '$in':
            keys = {name: frozenset(argument)}
        return (lambda row: test(row[name])), keys

    @staticmethod
    def every(parts):
        keys = {}
        for _, implied in parts:
            for name, values in implied.items():
                keys[name] = keys[name] & values if name in keys else values
        tests = tuple(test for test, _ in parts)
        if len(tests) == 1:
            return tests[0], keys
        if len(tests) == 2:
            first, second = tests
            return (lambda row: first(row) and second(row)), keys

        def every(row):
            for test in tests:
                if not test(row):
                    return False
            return True
        return every, keys

    @staticmethod
    def some(parts):
        tests = tuple(test for test, _ in parts)
        if len(tests) == 1:
            return parts[0]

        def some(row):
            for test in tests:
                if test(row):
                    return True
            return False
        return some, {}

    @staticmethod
    def negate(part):
        test, _ = part
        return (lambda row: not test(row)), {}

    @staticmethod
    def true():
        return _always, {}


class _Compiler:
    """The walk of a where: its checks and limits, each operator's argument
    parsed by the field's kind; ``builder`` (``_SQL`` or ``_Python``) makes
    what each step yields."""

    def __init__(self, fields, limits, builder):
        self.fields, self.limits, self.build = fields, limits, builder
        self.conditions = 0

    @staticmethod
    def fail(explain):
        raise Invalid('where', explain)

    def where(self, node, depth):
        if not isinstance(node, dict):
            self.fail('a where is an object: {"field": value, "$or": [...], ...}')
        if depth > self.limits.max_depth:
            self.fail(f'nested deeper than {self.limits.max_depth} levels')
        clauses = []
        for key, value in node.items():
            if key in ('$and', '$or'):
                if not isinstance(value, list) or not value:
                    self.fail(f'{key} takes a non-empty list of objects')
                parts = [self.where(item, depth + 1) for item in value]
                clauses.append(self.build.every(parts) if key == '$and' else self.build.some(parts))
            elif key == '$not':
                clauses.append(self.build.negate(self.where(value, depth + 1)))
            elif key.startswith('$'):
                self.fail(f'unknown operator {_short(key)}; at the top: {", ".join(LOGICAL)}')
            else:
                clauses.append(self.on_field(key, value, depth))
        return self.build.every(clauses) if clauses else self.build.true()

    def on_field(self, name, value, depth):
        found = self.fields.get(name)
        if found is None:
            self.fail(f'unknown field {_short(name)}; fields: {", ".join(self.fields)}')
        if not isinstance(value, dict):
            return self.condition(OPERATORS['$eq'], name, found, value)
        if not value:
            self.fail(f'{name}: an empty operator object')
        parts = []
        for key, argument in value.items():
            if key == '$not':
                if not isinstance(argument, dict) or depth + 1 > self.limits.max_depth:
                    self.fail(f'{name}: $not takes an operator object, '
                              f'nested at most {self.limits.max_depth} levels')
                parts.append(self.build.negate(self.on_field(name, argument, depth + 1)))
                continue
            operator = OPERATORS.get(key)
            if operator is None:
                self.fail(f'{name}: unknown operator {_short(key)}; operators: '
                          f'{", ".join(OPERATORS)}, $not')
            parts.append(self.condition(operator, name, found, argument))
        return self.build.every(parts)

    def condition(self, operator, name, found, argument):
        self.conditions += 1
        if self.conditions > self.limits.max_conditions:
            self.fail(f'more than {self.limits.max_conditions} conditions')
        sql_column, column = found
        return self.build.condition(operator, name, sql_column, self.argument(operator, name, column, argument))

    def argument(self, operator, name, column, argument):
        takes, limits, what = operator.takes, self.limits, f'{name}: {operator.name}'
        if takes == 'bool':
            if type(argument) is not bool:
                self.fail(f'{what} takes true or false')
            return argument
        if takes in ('pattern', 'text'):
            if column.kind.name != 'str':
                self.fail(f'{what} applies to text fields only')
            if not isinstance(argument, str):
                self.fail(f'{what} takes a string')
            self.value(what, column, argument)
            if takes == 'pattern':
                if len(argument) > limits.max_pattern:
                    self.fail(f'{what}: a pattern of more than {limits.max_pattern} characters')
                if argument.count('%') > limits.max_wildcards:
                    self.fail(f'{what}: a pattern with more than {limits.max_wildcards} %')
                # PostgreSQL refuses a pattern that ends in its escape; SQLite
                # would match nothing: the same 400 on both.
                if (len(argument) - len(argument.rstrip('\\'))) % 2:
                    self.fail(f'{what}: a pattern cannot end with the escape character \\; '
                              f'\\\\ matches a backslash')
            return argument
        if takes == 'list':
            if not isinstance(argument, list) or len(argument) > limits.max_list:
                self.fail(f'{what} takes a list of at most {limits.max_list} values')
            return [self.value(what, column, item, null='use $exists to match null') for item in argument]
        if takes == 'scalar' and column.kind.name == 'bool':
            self.fail(f'{what} does not apply to true/false fields')
        if argument is None and takes == 'value':
            return None
        return self.value(what, column, argument, null='use $exists to match null')

    def value(self, what, column, argument, null=None):
        if argument is None:
            self.fail(f'{what}: null is not a value here; {null}')
        if isinstance(argument, (dict, list)):
            self.fail(f'{what}: an object or list is not a value here')
        if isinstance(argument, str) and len(argument) > self.limits.max_text:
            self.fail(f'{what}: a string of more than {self.limits.max_text} characters')
        try:
            return column.kind.parse(argument)
        except ValueError as error:
            self.fail(f'{what}: {error}')


@dataclass(frozen=True)
class SortKey:
    """One key of an order: ``column`` (SQLAlchemy's) named ``name``,
    ``descending`` or not, nulls after the values or before them. A column
    that cannot hold null (``id``, a required or defaulted one) orders
    without a NULLS clause, so that a plain index serves it in PostgreSQL."""
    name: str
    column: object
    descending: bool = False
    nulls_last: bool = False

    @property
    def nullable(self):
        return bool(self.column.nullable) and not self.column.primary_key

    def clause(self):
        clause = self.column.desc() if self.descending else self.column.asc()
        if not self.nullable:
            return clause
        return clause.nulls_last() if self.nulls_last else clause.nulls_first()

    def text(self):
        """As ``sort_by`` says it, nulls explicit where there may be some: ``-due nulls last``."""
        text = ('-' if self.descending else '') + self.name
        return text + (' nulls last' if self.nulls_last else ' nulls first') if self.nullable else text


_SORT_KEY = re.compile(r'(-?)([^ ]*)(?: nulls (first|last))?\Z')


def sort_keys(sort_by, fields, tie_breaker, limits=Limits()):
    """The ``SortKey``s of ``"-created_at"`` or ``["is_completed", "-due
    nulls last"]``: ascending, or descending with ``-``; null sorts first,
    as the smallest value (ascending: nulls first, descending: nulls last),
    in both databases, unless the key ends with `` nulls first`` or ``
    nulls last``. ``tie_breaker`` (the id, ascending) ends the list unless
    it is in it, so that pages never overlap."""
    keys = [sort_by] if isinstance(sort_by, str) else sort_by
    if not isinstance(keys, list) or not keys or len(keys) > limits.max_sort_keys:
        raise Invalid('sort_by', f'a field name, -name for descending, or a list of at most '
                                 f'{limits.max_sort_keys} of them')
    found, seen = [], set()
    for key in keys:
        if not isinstance(key, str):
            raise Invalid('sort_by', 'field names are strings')
        matched = _SORT_KEY.match(key)
        if matched is None:
            raise Invalid('sort_by', f'{_short(key)}: a field, -field for descending, then optionally '
                                     f'" nulls first" or " nulls last"')
        sign, name, nulls = matched.groups()
        if name not in fields:
            raise Invalid('sort_by', f'cannot sort by {_short(name)}; fields: {", ".join(fields)}')
        if name in seen:
            raise Invalid('sort_by', f'{name} is given twice')
        seen.add(name)
        descending = sign == '-'
        nulls_last = descending if nulls is None else nulls == 'last'
        found.append(SortKey(name, fields[name], descending, nulls_last))
    if tie_breaker.name not in seen:
        found.append(SortKey(tie_breaker.name, tie_breaker))
    return tuple(found)


def order_by(sort_by, fields, tie_breaker, limits=Limits()):
    """The ORDER BY clauses of ``sort_keys``."""
    return [key.clause() for key in sort_keys(sort_by, fields, tie_breaker, limits)]


# Keyset pagination: a cursor holds the sort and the values of a page's last
# row; the rows after it are read from where it stands, by an index when one
# serves the where and the sort, however deep the page.

def cursor(keys, values):
    """The opaque ``after`` of the row whose sort values are ``values``:
    base64url of JSON ``[sort, values]``."""
    values = [value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value
              for value in values]
    text = json.dumps([[key.text() for key in keys], values], separators=(',', ':'), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip('=')


def _refuse_constant(name):
    raise ValueError(f'{name} is not a value')


def cursor_values(after, keys, kinds):
    """The values a cursor holds, each parsed by the kind of its key
    (``kinds``: ``{name: Column}``) as a where's would be. Invalid on
    ``after`` for a cursor that is not one of this table's, or belongs to
    another sort."""
    def refuse(explain):
        raise Invalid('after', explain)
    if not isinstance(after, str):
        refuse('the meta.next of the page before, a string')
    try:
        text = base64.urlsafe_b64decode(after + '=' * (-len(after) % 4))
        sort, values = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, TypeError, RecursionError):
        refuse('not a cursor: give the meta.next of the page before, unchanged')
    if sort != [key.text() for key in keys] or not isinstance(values, list) or len(values) != len(keys):
        refuse('this cursor is of another sort_by: give the sort_by of the page it came from')
    parsed = []
    for key, value in zip(keys, values):
        if value is None:
            if not key.nullable:
                refuse(f'{key.name}: not null in any row')
            parsed.append(None)
            continue
        column = kinds[key.name]
        if isinstance(value, (dict, list)):
            refuse(f'{key.name}: an object or list is not a value here')
        if isinstance(value, str) and column.max_length is not None and len(value) > column.max_length:
            refuse(f'{key.name}: longer than any value of the field')
        try:
            parsed.append(column.kind.parse(value))
        except ValueError as error:
            refuse(f'{key.name}: {error}')
    return parsed


def _value(key, value):
    # A bound parameter of the column's type: SQLAlchemy compares true and false with = only.
    return sa.bindparam(None, value, type_=key.column.type)


def _equal(key, value):
    return key.column.is_(None) if value is None else key.column == _value(key, value)


def _beyond(key, value):
    """Rows whose ``key`` sorts strictly after ``value``."""
    column = key.column
    if value is None:  # nulls are together: after them, the values, when they come first
        return sa.false() if key.nulls_last else column.is_not(None)
    value = _value(key, value)
    beyond = column < value if key.descending else column > value
    return sa.or_(beyond, column.is_(None)) if key.nulls_last and key.nullable else beyond


def _after(keys, values):
    """Rows after ``values`` in the order of ``keys``: one expression."""
    key, value = keys[0], values[0]
    if len(keys) == 1:
        return _beyond(key, value)
    return sa.or_(_beyond(key, value), sa.and_(_equal(key, value), _after(keys[1:], values[1:])))


def after(keys, values):
    """The rows after ``values`` (a cursor's) in the order of ``keys``, as
    conditions whose rows, read in the order and concatenated, are those
    rows: each one a range of an index on the where's columns and the
    first key (the leading key's own bound, then its nulls apart)."""
    key, value = keys[0], values[0]
    rest = _after(keys[1:], values[1:]) if len(keys) > 1 else None
    column = key.column
    if value is None:
        segments = [] if rest is None else [sa.and_(column.is_(None), rest)]
        if not key.nulls_last:
            segments.append(column.is_not(None))
        return segments or [sa.false()]
    value = _value(key, value)
    beyond = column < value if key.descending else column > value
    if rest is None:
        segments = [beyond]
    else:
        bound = column <= value if key.descending else column >= value
        segments = [sa.and_(bound, sa.or_(beyond, sa.and_(column == value, rest)))]
    if key.nulls_last and key.nullable:
        segments.append(column.is_(None))
    return segments


def paging(request, default_size, max_size):
    """``(page, page_size)`` from a request: page from 1, page_size from 1 to
    ``max_size``; the offset they make fits comfortably in 64 bits."""
    page_size = request.get('page_size', default_size)
    if type(page_size) is not int or not 1 <= page_size <= max_size:
        raise Invalid('page_size', f'an integer from 1 to {max_size}')
    page = request.get('page', 1)
    if type(page) is not int or not 1 <= page <= INT64_MAX // (2 * max_size):
        raise Invalid('page', 'an integer from 1')
    return page, page_size
