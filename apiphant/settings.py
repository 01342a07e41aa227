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


def log_level(text):
    level = str(text).upper()
    if level not in ('DEBUG', 'INFO', 'WARNING', 'ERROR'):
        raise argparse.ArgumentTypeError(f'{text!r} is not one of debug, info, warning, error')
    return level


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
    Setting('log_level', 'info', 'debug, info, warning or error', log_level, BOTH),
)


def add_arguments(parser, command, environ=os.environ):
    """Add the settings of ``command`` to an argparse parser; a default comes
    from the environment variable when it is set."""
    group = parser.add_argument_group('settings (each also read from its APIPHANT_* variable)')
    for setting in SETTINGS:
        if command in setting.commands:
            group.add_argument(
                setting.flag, dest=setting.name, type=setting.type, metavar=setting.name.split('_')[-1].upper(),
                default=environ.get(setting.env, setting.default),
                help=f'{setting.help} [{setting.env}, default {setting.default}]')
