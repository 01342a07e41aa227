"""Finding a product: a directory path (its parent goes on sys.path, as in
0.2) or an importable package name, and importing its modules with errors
that name the module and the line."""
import importlib
import os
import sys
import traceback

__all__ = ['ProductError', 'locate', 'import_module', 'directory']


class ProductError(Exception):
    """The product cannot be served; the message is one line saying why."""


def locate(product):
    """The package name of ``product``, putting its parent directory on
    sys.path when ``product`` is a directory."""
    if os.sep in product or (os.altsep and os.altsep in product) or os.path.isdir(product):
        path = os.path.abspath(product)
        if not os.path.isdir(path):
            raise ProductError(f'no product directory at {path}')
        parent, name = os.path.split(path.rstrip(os.sep))
        if not name.isidentifier():
            raise ProductError(f'{name!r} (from {path}) is not a valid Python package name')
        if not os.path.isdir(os.path.join(path, 'api')):
            raise ProductError(f'no api/ directory in {path}: a product keeps its actions under api/v0/')
        if parent not in sys.path:
            sys.path.insert(0, parent)
        return name
    if not all(part.isidentifier() for part in product.split('.')):
        raise ProductError(f'{product!r} is neither a directory nor a Python package name')
    try:
        found = importlib.util.find_spec(product)
    except ImportError:
        found = None
    if found is None:
        raise ProductError(f'no product {product!r}: not a directory here and not an importable package')
    return product


def directory(name):
    """The directory of the located package ``name``."""
    found = importlib.util.find_spec(name)
    return os.path.dirname(found.origin) if found.origin else list(found.submodule_search_locations)[0]


def import_module(name):
    """Import ``name``; any failure becomes a ProductError naming the module
    and the file and line where it happened."""
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise ProductError(f'cannot import {name}: {describe(error)}') from error


def describe(error):
    """``SyntaxError: invalid syntax (/path/x.py, line 3)`` from an exception."""
    if isinstance(error, SyntaxError):
        return f'{type(error).__name__}: {error.msg} ({error.filename}, line {error.lineno})'
    frames = traceback.extract_tb(error.__traceback__)
    where = f' ({frames[-1].filename}, line {frames[-1].lineno})' if frames else ''
    return f'{type(error).__name__}: {error}{where}'
