from apiphant import validation
from apiphant.validation import ApiError


def read(request):
    """raise ApiError(request.status, request.error)"""
    if 'error' in request:
        raise ApiError(request.status, request.error)
    raise ApiError(request.status)


def create(request):
    """raise one of the named error classes"""
    cls = getattr(validation, request.cls)
    raise cls(*request.get('args', []))


def update(request):
    raise ApiError(409, {'unencodable': object()})
