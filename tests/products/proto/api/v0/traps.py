import os  # noqa: F401  (an imported module never routes)
from os.path import join  # noqa: F401

from proto.api.v0.echo import read as update  # noqa: F401  (imported, not defined here)

create = 'not a function'


class read:  # a class named like an action never routes
    pass


def _private(request):
    return {'private': True}


def __init__(request):
    return {'dunder': True}


def helper(request):
    return {'helper': True}


def delete(request):
    return {'ok': True}
