"""apiphant: a product's module tree served as a JSON API on gevent."""
from apiphant.context import context
from apiphant.dispatch import Application, app
from apiphant.errors import ApiError
from apiphant.request import Request
from apiphant.routing import action, raw_environ, raw_response

__version__ = '1.0.0.dev0'

__all__ = ['app', 'Application', 'action', 'raw_environ', 'raw_response', 'context',
           'ApiError', 'Request', '__version__']
