"""The database settings handed to generated CRUD at start-up.

``apiphant`` and ``apiphant-background`` parse their command line (and its
``APIPHANT_*`` variables) once and hand the ``database_*`` settings here,
before the product is imported; ``storage`` makes the product's
``Database`` from them. Nothing travels through ``os.environ``. This module
imports no database library, so a product without tables pays nothing.
"""
from apiphant.settings import SETTINGS

__all__ = ['configure', 'handed']

NAMES = ('database_url', 'database_pool_size', 'database_wait', 'database_timeout',
         'database_connect_timeout', 'watch_retention', 'watch_heartbeat', 'max_watchers', 'max_watchers_per_client')
_MISSING = object()
_handed = None


def configure(settings=None, **values):
    """Hand the database settings to the tables of this process: ``settings``
    is an object with some of the attributes in ``NAMES`` (the parsed command
    line of ``apiphant`` or ``apiphant-background``), keyword arguments of
    those names override it, and a setting given neither way keeps its
    default. Not configured, a process uses the defaults: the SQLite file
    beside the product."""
    global _handed
    chosen = {}
    for setting in SETTINGS:
        if setting.name in NAMES:
            value = values.pop(setting.name, getattr(settings, setting.name, _MISSING))
            chosen[setting.name] = setting.type(setting.default) if value is _MISSING else value
    if values:
        raise TypeError(f'configure() takes no {", ".join(values)}')
    _handed = chosen


def handed():
    """The settings handed last (the defaults when none were)."""
    if _handed is None:
        configure()
    return _handed
