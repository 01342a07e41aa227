"""Every setting of every apiphant command, in one table: a flag, an
``APIPHANT_*`` environment variable, a default and a line of help. The
commands' ``--help`` and the README are made from (and tested against) it."""
import argparse
import os
import re
from dataclasses import dataclass

__all__ = ['Setting', 'SETTINGS', 'add_arguments', 'size']


def size(text):
    """Bytes from ``1048576``, ``512K``, ``1M``, ``1MiB`` or ``2G``."""
    match = re.fullmatch(r'\s*(\d+)\s*([KMG]?)(?:i?B)?\s*', str(text), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f'{text!r} is not a size (e.g. 1048576, 512K, 1M)')
    return int(match[1]) << {'': 0, 'K': 10, 'M': 20, 'G': 30}[match[2].upper()]


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds')
    return value


def count(text):
    if not str(text).isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of processes (1 or more)')
    return int(text)


def switch(text):
    value = str(text).lower()
    if value not in ('on', 'off', '1', '0', 'true', 'false', 'yes', 'no'):
        raise argparse.ArgumentTypeError(f'{text!r} is not on or off')
    return value in ('on', '1', 'true', 'yes')


def log_level(text):
    level = str(text).upper()
    if level not in ('DEBUG', 'INFO', 'WARNING', 'ERROR'):
        raise argparse.ArgumentTypeError(f'{text!r} is not one of debug, info, warning, error')
    return level


def log_format(text):
    value = str(text).lower()
    if value not in ('text', 'json'):
        raise argparse.ArgumentTypeError(f'{text!r} is not text or json')
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    type: object = str
    commands: tuple = ('apiphant',)

    @property
    def env(self):
        return 'APIPHANT_' + self.name.upper()

    @property
    def flag(self):
        return '--' + self.name.replace('_', '-')


BOTH = ('apiphant', 'apiphant-background')

SETTINGS = (
    Setting('max_body_size', '1M', 'largest request body; a larger one is answered 413 '
            'before it is read (bytes, or with K, M, G)', size),
    Setting('shutdown_timeout', '8', 'seconds SIGTERM lets requests in flight finish, '
            'below supervisor\'s 10 s before SIGKILL', seconds),
    Setting('access_log', 'on', 'one line per request to stderr (on), nowhere (off), '
            'or appended to this file'),
    Setting('head_timeout', '10', 'seconds a request head may take to arrive whole, '
            'however slowly its bytes trickle', seconds),
    Setting('body_timeout', '10', 'seconds a request body may stall (and a response '
            'wait for a slow reader)', seconds),
    Setting('keepalive_timeout', '75', 'seconds an idle keep-alive connection is kept, '
            'longer than nginx\'s 60 s to its upstreams', seconds),
    Setting('workers', '1', 'processes serving the same port; with more than one, a parent '
            'restarts any that dies and SIGHUP replaces them one by one', count),
    Setting('stuck_timeout', '30', 'seconds a worker may go without a heartbeat (stuck '
            'in CPU) before it is killed and replaced', seconds),
    Setting('reload', 'off', 'restart the workers when a file of the product changes '
            '(development)', switch),
    Setting('log_level', 'info', 'debug, info, warning or error', log_level, BOTH),
    Setting('log_format', 'text', 'text: lines for people; json: one object per line (time, level, '
            'request id, route, status, duration, client) for log shippers', log_format, BOTH),
    Setting('database_url', 'none', 'PostgreSQL URL (postgresql://user:password@host/db): the '
            'database of generated CRUD tables, and where schedulers on several hosts claim each '
            'run, so that it runs once; sqlite:///PATH: a SQLite file for the tables; none: the '
            'SQLite file beside the product, and a scheduler that runs alone, in memory',
            commands=BOTH),
    Setting('database_pool_size', '10', 'connections to the database each API process keeps '
            '(with SQLite, also the threads its calls run in)', int),
    Setting('database_wait', '5', 'seconds a request waits for a database connection or, with '
            'SQLite, for its turn to write; longer: 503 with Retry-After', seconds),
    Setting('stop_timeout', '8', 'seconds SIGTERM lets running tasks finish before they are '
            'interrupted, below supervisor\'s 10 s before SIGKILL', seconds,
            ('apiphant-background',)),
    Setting('lock_dir', '/tmp', 'directory of the lock file that keeps a second scheduler of '
            'the product from starting on this host when there is no database',
            commands=('apiphant-background',)),
)


def add_arguments(parser, command, environ=os.environ):
    """Add the settings of ``command`` to an argparse parser; a default comes
    from the environment variable when it is set."""
    group = parser.add_argument_group('settings (each also read from its APIPHANT_* variable)')
    for setting in SETTINGS:
        if command in setting.commands:
            extra = {'nargs': '?', 'const': 'on'} if setting.type is switch else {}  # --reload alone is on
            group.add_argument(
                setting.flag, dest=setting.name, type=setting.type, metavar=setting.name.split('_')[-1].upper(),
                **extra,
                default=environ.get(setting.env, setting.default),
                help=f'{setting.help} [{setting.env}, default {setting.default}]')
