"""apiphant: a product's module tree served as a JSON API on gevent.

The names below are imported on first use, so that ``python -m apiphant`` and
the entry scripts can patch gevent before anything else is imported.
"""
import importlib

__version__ = '1.0.0.dev0'

_EXPORTS = {
    'app': 'apiphant.dispatch',
    'Application': 'apiphant.dispatch',
    'action': 'apiphant.routing',
    'raw_environ': 'apiphant.routing',
    'raw_response': 'apiphant.routing',
    'context': 'apiphant.current',
    'ApiError': 'apiphant.errors',
    'Request': 'apiphant.request',
}

__all__ = [*_EXPORTS, '__version__']


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'apiphant' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
