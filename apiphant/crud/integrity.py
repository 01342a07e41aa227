"""What the database's constraints refuse, answered on the field: a row that
would share a unique value is ``409 {"error": {"field": "email", "state":
"taken", "explain": ...}}``; a NULL where NOT NULL holds, or a value outside
a CHECK's choices, is ``400`` on the field, and so is a reference to an id
that no row of the target table has (state ``invalid``). Never a 500: a violation this
module cannot place on a field is a 409 all the same.

The databases name the rule differently: PostgreSQL by SQLSTATE and the
constraint's (or column's) name, SQLite in its message (``UNIQUE constraint
failed: users.email``), except for a foreign key, where it names nothing:
the values written then tell which reference has no row.
"""
import contextlib
import re

from sqlalchemy import exc

from apiphant.errors import Conflict, Invalid
from apiphant.request import Request

__all__ = ['violations', 'Taken']

_SQLITE = re.compile(r'(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) constraint failed(?:: (.*))?\Z')
_KINDS = {'23505': 'UNIQUE', '23502': 'NOT NULL', '23514': 'CHECK', '23503': 'FOREIGN KEY'}


class Taken(Conflict):
    """409 on a field whose value another row holds."""

    def __init__(self, field, explain):
        super().__init__(Request(field=field, state='taken', explain=explain))


@contextlib.contextmanager
def violations(table, values=None):
    """Turn an IntegrityError of ``table``'s statements into its answer
    (the transaction it broke is rolled back first: enter this outside it);
    ``values``: the row's values written, which place a foreign key's
    failure on SQLite."""
    try:
        yield
    except exc.IntegrityError as error:
        raise answer(table, error.orig, values) from None


def answer(table, error, values=None):
    """The ApiError for the driver's IntegrityError ``error``."""
    kind, names = _named(table, error)
    if kind == 'FOREIGN KEY':
        if not names and values is not None and not hasattr(error, 'sqlstate'):
            names = table.dangling_references(values)
        if names and names[0] in table.references:
            return Invalid(names[0], f'no row of {table.references[names[0]].target.name} has this id')
    if kind == 'UNIQUE' and names:
        return Taken(names[-1], f'another row of {table.name} has this {" and ".join(names)}')
    if kind == 'NOT NULL' and names:
        return Invalid(names[0], 'should not be null')
    if kind == 'CHECK' and names:
        column = table.columns[names[0]]
        return Invalid(names[0], 'should be one of ' + ', '.join(map(repr, column.choices)))
    return Conflict(Request(state='conflict', explain=' '.join(str(error).split())))


def _named(table, error):
    """``(kind, column names)`` the error is about, as far as it says."""
    sqlstate = getattr(error, 'sqlstate', None)
    if sqlstate is not None:
        kind, diag = _KINDS.get(sqlstate), error.diag
        if kind == 'NOT NULL':
            return kind, (diag.column_name,) if diag.column_name in table.columns else ()
        return kind, table.constraint_fields.get(diag.constraint_name, ())
    match = _SQLITE.match(str(error))
    if match is None:
        return None, ()
    kind, what = match.groups()
    if kind == 'UNIQUE':
        return kind, table.constraint_fields.get(tuple(part.strip() for part in what.split(',')), ())
    if kind == 'NOT NULL':
        column = what.rpartition('.')[2]
        return kind, (column,) if column in table.columns else ()
    return kind, table.constraint_fields.get((what or '').strip(), ())
