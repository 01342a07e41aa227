"""The fields of a CRUD request that are not column values: the names an
action accepts, and the ``id`` and ``version`` that name a row.

A field that does not fit raises the ``Missing`` or ``Invalid`` of
``apiphant.errors``, the errors ``field()`` raises too: a product's
``except Invalid`` around ``tasks.create(request)`` catches every 400 about a
field that CRUD answers.
"""
from apiphant.errors import Invalid, Missing
from apiphant.crud.columns import Column

__all__ = ['ROW_KEY', 'only', 'row_id', 'row_version']

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
