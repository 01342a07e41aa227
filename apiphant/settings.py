"""Every setting of every apiphant command, in one table: a flag, an
``APIPHANT_*`` environment variable, a default and a line of help. The
commands' ``--help`` and the README are made from (and tested against) it."""
import argparse
import importlib
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


def natural(text):
    if not str(text).isdigit():
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number (0 or more)')
    return int(text)


def _parsed(module, name):
    """A setting's type parsed by ``name`` of ``module``, imported at first
    use (it imports more than this table should), its ValueError said as
    argparse says a bad value."""
    def parse(text):
        function = getattr(importlib.import_module(module), name)
        try:
            return function(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse.__name__ = name
    return parse


networks = _parsed('apiphant.limits', 'networks')
cors_origins = _parsed('apiphant.cors', 'origins')
_rate = _parsed('apiphant.limits', 'Rate')


def rate(text):
    return None if str(text).strip().lower() in ('off', '', 'none') else _rate(text)


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
    Setting('watchdog', 'off', 'serve even a single worker under a parent that replaces it when it dies '
            'or sends no heartbeat for --stuck-timeout (stuck in CPU); on with --workers 2 or more', switch),
    Setting('stuck_timeout', '30', 'seconds a worker may go without a heartbeat (stuck '
            'in CPU) before it is killed and replaced', seconds),
    Setting('reload', 'off', 'restart the workers when a file of the product changes '
            '(development)', switch),
    Setting('require_json', 'on', 'a request body must say Content-Type: application/json (or '
            '+json): a form or text/plain, which a browser sends across sites unasked, gets 415; off: '
            'any body is read as JSON (old clients)', switch),
    Setting('trusted_proxies', '', 'addresses or networks of the proxies whose X-Forwarded-For and '
            'X-Real-IP name the client (nginx in front: 127.0.0.1); from any other peer they are ignored',
            networks),
    Setting('rate_limit', 'off', 'requests each client may make, as a token bucket: 10/s, 100/m, '
            '1000/h, optionally "burst N"; past it 429 with Retry-After (an action may have its own: '
            '@action(rate_limit=...)); off: none', rate),
    Setting('max_in_flight', '1000', 'requests a process works on at once; past it a new request '
            'gets a fast 503 with Retry-After instead of queueing (0: no cap)', natural),
    Setting('metrics', 'on', 'GET /metrics in Prometheus text format, for the clients of '
            '--metrics-allow', switch),
    Setting('metrics_allow', '127.0.0.1/8,::1', 'addresses or networks that may read /metrics '
            '(judged on the real client, behind trusted proxies)', networks),
    Setting('docs', 'on', 'GET /api/openapi.json (the OpenAPI 3.1 description of the API) and GET /docs '
            '(Swagger UI over it, served by this server alone); off: neither, e.g. in production', switch),
    Setting('cors_origins', '', 'origins (scheme://host[:port], comma-separated) whose browser pages may '
            'call the API across origins: preflights answered, Access-Control-Allow-Origin on answers; '
            'empty: CORS off', cors_origins),
    Setting('client_js', 'on', 'GET /api/client.js, the JavaScript client (an ES module)', switch),
    Setting('auth_keys', '', 'the keys that sign and verify access tokens (apiphant.auth): KID:SECRET pairs, '
            'space-separated, the first signs, each secret 32 bytes or more; set it in the environment '
            '(a flag shows in ps) or use --auth-keys-file'),
    Setting('auth_keys_file', '', 'a file holding the auth keys (KID:SECRET, one per line), readable by the '
            'product\'s user alone'),
    Setting('metrics_dir', '', 'a directory where each process of the product (API processes, the '
            'scheduler) keeps its numbers, so that /metrics shows them all (a parent of --workers '
            'makes one for its workers when empty)', commands=BOTH),
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
    Setting('database_timeout', '5', 'seconds the database work of a transaction() or connect() block may '
            'take: no statement starts past it (SQLite is interrupted at it, PostgreSQL\'s statement_timeout is '
            'as long); longer: 503 with Retry-After; 0: none', seconds),
    Setting('database_connect_timeout', '1', 'seconds a new PostgreSQL connection may take (psycopg alone '
            'waits 2 s at least); longer: 503 with Retry-After', seconds),
    Setting('watch_retention', '600', 'seconds the change log keeps each change of a watched table: a '
            'client that reconnects later than that with its Last-Event-ID gets a reset event and lists again',
            seconds),
    Setting('watch_heartbeat', '15', 'seconds between two heartbeats of a watch stream (a comment, which '
            'keeps proxies from closing a quiet stream)', seconds),
    Setting('max_watchers', '20000', 'watch streams one process holds at once; past it, 503 with '
            'Retry-After', natural),
    Setting('max_watchers_per_client', '100', 'watch streams one client (address) holds at once in a '
            'process; past it, 429 with Retry-After', natural),
    Setting('stop_timeout', '8', 'seconds SIGTERM lets running tasks finish before they are '
            'interrupted, below supervisor\'s 10 s before SIGKILL', seconds,
            ('apiphant-background',)),
    Setting('lock_dir', '/tmp', 'directory of the lock file that keeps a second scheduler of '
            'the product from starting on this host when there is no database',
            commands=('apiphant-background',)),
)


def add_arguments(parser, command, environ=os.environ, names=None):
    """Add the settings of ``command`` (only those ``names`` when given) to an
    argparse parser; a default comes from the environment variable when it
    is set."""
    group = parser.add_argument_group('settings (each also read from its APIPHANT_* variable)')
    for setting in SETTINGS:
        if command in setting.commands and (names is None or setting.name in names):
            extra = {'nargs': '?', 'const': 'on'} if setting.type is switch else {}  # --reload alone is on
            group.add_argument(
                setting.flag, dest=setting.name, type=setting.type, metavar=setting.name.split('_')[-1].upper(),
                **extra,
                default=environ.get(setting.env, setting.default),
                help=f'{setting.help} [{setting.env}, default {setting.default}]')
