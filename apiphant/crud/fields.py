"""The fields of a CRUD request that are not column values: the names an
action accepts, and the ``id`` and ``version`` that name a row.

A field that does not fit raises the ``Missing`` or ``Invalid`` of
``apiphant.errors``, the errors ``field()`` raises too: a product's
``except Invalid`` around ``tasks.create(request)`` catches every 400 about a
field that CRUD answers.
"""
import contextlib

from sqlalchemy import exc

from apiphant.errors import Invalid, Missing
from apiphant.crud.columns import Column

__all__ = ['ROW_KEY', 'only', 'row_id', 'row_version', 'refused']

ROW_KEY = Column(int, required=True)  # the kind of an id and of a version


def only(request, allowed):
    """Invalid on the first field of ``request`` that is not ``allowed``."""
    for name in request:
        if name not in allowed:
            raise Invalid(name, f'not a field of this request; fields: {", ".join(allowed)}')


def row_id(request):
    """The ``id`` of ``request``, which must give one."""
    if 'id' not in request:
        raise Missing('id')
    return _key(request, 'id')


def row_version(request):
    """The ``version`` of ``request``, or None when it gives none."""
    if 'version' not in request:
        return None
    return _key(request, 'version')


def _key(request, name):
    try:
        return ROW_KEY.check(request[name])
    except ValueError as error:
        raise Invalid(name, str(error)) from None


@contextlib.contextmanager
def refused(name):
    """A value the database refuses (a ``DataError``: out of range, a bad
    pattern) is ``Invalid(name)``, the field that brought it, never a 500.
    Parsing catches what it can before SQL runs; this is the net behind it."""
    try:
        yield
    except exc.DataError as error:
        raise Invalid(name, f'the database cannot evaluate it: {_primary(error.orig)}') from None


def _primary(error):
    diag = getattr(error, 'diag', None)  # psycopg's, without the statement or values
    text = getattr(diag, 'message_primary', None) or str(error)
    return ' '.join(text.split())[:200]
