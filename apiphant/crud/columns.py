"""A column of a generated table: its kind, what a client may do with it, and
how a JSON value becomes what the database stores.

Every value that reaches SQL went through a kind's ``parse`` first: a JSON
boolean is never a number, integers fit in 64 bits, floats are finite,
strings hold no NUL (PostgreSQL cannot store it), and dates are ISO 8601.
A value that does not parse is a 400 before any SQL runs, never a driver
error.
"""
import datetime
import hashlib
import math
from dataclasses import dataclass

import sqlalchemy as sa

__all__ = ['Column', 'ON_DELETE', 'constraint_name', 'Kind', 'KINDS', 'UtcDateTime', 'INT64_MIN', 'INT64_MAX',
           'DEFAULT_MAX_LENGTH']

INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
UTC = datetime.timezone.utc
_ISO_MAX = 64  # longer than any ISO 8601 date and time
# A page of list holds page_size rows of such values: 100 x 64 Ki characters
# is the answer of one full text column, which stays a few MB.
DEFAULT_MAX_LENGTH = 65536
_DEFAULT = object()
ON_DELETE = {'restrict': 'RESTRICT', 'cascade': 'CASCADE', 'set null': 'SET NULL'}  # to SQL


class UtcDateTime(sa.types.TypeDecorator):
    """An aware datetime in UTC: ``timestamptz`` in PostgreSQL, and in SQLite a
    naive UTC string in SQLAlchemy's fixed format, so that text order is time
    order."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == 'sqlite' else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _str(value):
    if not isinstance(value, str):
        raise ValueError('should be a string')
    if '\x00' in value:
        raise ValueError('should not contain NUL characters')
    return value


def _int(value):
    # 100.0 is an integer to JSON Schema and to JavaScript, which cannot tell
    # it from 100: whole floats are taken while a float holds them exactly.
    if type(value) is float and value.is_integer() and abs(value) <= _EXACT_FLOAT:
        value = int(value)
    if type(value) is bool or not isinstance(value, int):
        raise ValueError('should be an integer')
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError('should be an integer of 64 bits')
    return int(value)


_EXACT_FLOAT = 2 ** 53  # the largest whole float with every integer below it


def _float(value):
    if type(value) is bool or not isinstance(value, (int, float)):
        raise ValueError('should be a number')
    try:
        value = float(value)
    except OverflowError:
        raise ValueError('should be a finite number') from None
    if not math.isfinite(value):
        raise ValueError('should be a finite number')
    return value


def _bool(value):
    if type(value) is not bool:
        raise ValueError('should be true or false')
    return value


def _datetime(value):
    if isinstance(value, str) and len(value) <= _ISO_MAX:
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, datetime.datetime):
        raise ValueError('should be an ISO 8601 date and time, e.g. 2026-11-22T03:04:05Z')
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError('should be a date and time between the years 1 and 9999') from None


def _date(value):
    if isinstance(value, str) and len(value) <= _ISO_MAX:
        try:
            value = datetime.date.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise ValueError('should be an ISO 8601 date, e.g. 2026-11-22')
    return value


def _now():
    return datetime.datetime.now(UTC)


def _today():
    return _now().date()


@dataclass(frozen=True)
class Kind:
    """A kind of value: its name in declarations, the Python type that
    names it too, its SQL type and its parser. ``now`` makes the ``'now'``
    default (None: the kind has none)."""
    name: str
    python_type: type
    sql_type: object
    parse: object
    now: object = None


KINDS = {kind.name: kind for kind in (
    Kind('str', str, sa.Text, _str),
    Kind('int', int, sa.BigInteger, _int),
    Kind('float', float, sa.Float, _float),
    Kind('bool', bool, sa.Boolean, _bool),
    Kind('datetime', datetime.datetime, UtcDateTime, _datetime, _now),
    Kind('date', datetime.date, sa.Date, _date, _today),
)}
_BY_TYPE = {kind.python_type: kind for kind in KINDS.values()}


class Column:
    """``Column(str, required=True, max_length=200)``: one field of a table.

    - ``kind``: ``str``, ``int``, ``float``, ``bool``, ``'datetime'``
      (``datetime.datetime``) or ``'date'`` (``datetime.date``).
    - ``required``: a create must give it, and it is never null.
    - ``default``: the value a create that leaves it out stores: a value, a
      callable, or ``'now'`` for a datetime or date. A column with a default
      is never null.
    - ``max_length`` (str; ``DEFAULT_MAX_LENGTH`` unless given, ``None``
      for none), ``choices`` (any kind): further checks.
    - ``unique=True``: no two rows hold the same value (a unique index; a
      create or update that would is a 409 on the field, state ``taken``);
      ``index=True``: an index, for wheres and sorts on it.
    - ``references='projects'`` (a table's name in the product, or the
      ``Table`` itself; an int column): the id of a row of that table, a
      foreign key in the database, with an index. A create or update naming
      an id that has no row there is a 400 on the field. ``on_delete`` says
      what deleting the row it names does: ``'restrict'`` (the default: the
      delete is a 409 naming what refers to the row), ``'cascade'`` (this
      row goes too) or ``'set null'`` (the column becomes null; the column
      may then not be required or defaulted).
    - ``writable=False``: clients cannot set it; hooks and server code can.
    - ``hidden=True``: never leaves the server (not answered, not queried),
      and clients cannot set it either unless ``writable=True`` says so.

    Any other column may be null, and is null when a create leaves it out.
    The database holds these rules too: NOT NULL for a required column or one
    with a default, a CHECK for ``choices`` (of str, int, float or bool).
    """

    __slots__ = ('kind', 'required', 'default', 'max_length', 'choices', 'writable', 'hidden', 'name',
                 'unique', 'index', 'references', 'on_delete', 'target')

    def __init__(self, kind, *, required=False, default=None, max_length=_DEFAULT, choices=None,
                 writable=None, hidden=False, unique=False, index=False, references=None, on_delete=None):
        self.kind = KINDS.get(kind) if isinstance(kind, str) else _BY_TYPE.get(kind)
        if self.kind is None:
            raise TypeError(f'Column kind {kind!r} should be one of str, int, float, bool, '
                            f"'datetime', 'date'")
        if required and default is not None:
            raise TypeError('a required column has no default: a create must give it')
        if writable is None:
            writable = not hidden
        if max_length is _DEFAULT:
            max_length = DEFAULT_MAX_LENGTH if self.kind.name == 'str' else None
        if required and not writable:
            raise TypeError('a required column should be writable: a client must give it '
                            '(a hidden one says writable=True)')
        if max_length is not None and (self.kind.name != 'str' or type(max_length) is not int
                                       or max_length < 1):
            raise TypeError('max_length is a positive int, for a str column')
        if choices is not None:
            choices = tuple(self.kind.parse(choice) for choice in choices)
            if not choices:
                raise TypeError('choices should not be empty')
        if isinstance(default, str) and default == 'now' and self.kind.now is not None:
            default = self.kind.now
        elif default is not None and not callable(default):
            default = self.kind.parse(default)
            if choices is not None and not _among(default, choices):
                raise TypeError(f'the default {default!r} is not one of the choices')
        self.required, self.default, self.max_length, self.choices = required, default, max_length, choices
        self.writable, self.hidden, self.name = writable, hidden, None
        self.unique, self.index = bool(unique), bool(index)
        self.references, self.on_delete, self.target = references, on_delete, None
        if references is None:
            if on_delete is not None:
                raise TypeError('on_delete is for a column that references a table')
            return
        if self.kind.name != 'int':
            raise TypeError('a column that references a table holds its ids: Column(int, references=...)')
        if not isinstance(references, str) and not hasattr(references, 'sql'):
            raise TypeError(f'references should be a table name or a Table, not {references!r}')
        self.on_delete = on_delete = 'restrict' if on_delete is None else on_delete
        if on_delete not in ON_DELETE:
            raise TypeError(f'on_delete should be one of {", ".join(map(repr, ON_DELETE))}, not {on_delete!r}')
        if on_delete == 'set null' and not self.nullable:
            raise TypeError("on_delete='set null' needs a column that may be null (not required, no default)")
        if choices is not None:
            raise TypeError('a column that references a table has no choices: the rows of that table are')
        self.index = True  # a delete of a row it refers to finds the rows that refer to it

    @property
    def nullable(self):
        return not self.required and self.default is None

    @property
    def constant_default(self):
        """The default when it is a value (what existing rows get when the
        column is added to a table), else None."""
        return None if callable(self.default) else self.default

    def initial(self):
        """The value a create stores when it leaves the column out."""
        return self.default() if callable(self.default) else self.default

    def check(self, value):
        """The value to store for ``value`` from a client or a hook; ValueError
        with an explanation when it does not fit."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError('should not be null')
        value = self.kind.parse(value)
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(f'should be at most {self.max_length} characters long')
        if self.choices is not None and not _among(value, self.choices):
            raise ValueError('should be one of ' + ', '.join(map(repr, self.choices)))
        return value

    def sql_column(self):
        return sa.Column(self.name, self.kind.sql_type(), nullable=self.nullable)

    def sql_check(self, sql_table):
        """The CHECK of ``choices`` on ``sql_table``'s column, or None (none
        declared, or a date kind, whose literals the two databases spell
        differently)."""
        if self.choices is None or self.kind.name in ('datetime', 'date'):
            return None
        return sa.CheckConstraint(sql_table.c[self.name].in_(self.choices),
                                  name=constraint_name('ck', sql_table.name, (self.name,)))

    def __repr__(self):
        return f'Column({self.kind.name}, name={self.name!r})'


def constraint_name(prefix, table_name, names):
    """``uq_items_email``: a constraint's or an index's name, at most 63
    characters (PostgreSQL cuts longer ones), unique per table and columns."""
    name = f'{prefix}_{table_name}_{"_".join(names)}'
    if len(name) > 63:
        name = f'{name[:54]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}'
    return name


def _among(value, choices):
    return any(value == choice and type(value) is type(choice) for choice in choices)
