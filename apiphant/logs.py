"""What every apiphant command logs, and how: lines of text for people, or
one JSON object per line for log shippers (``--log-format json``).

The access log is apart from the logging module: one line per request,
buffered, so that a request never waits on the disk.
"""
import logging
import sys
import time

import orjson

__all__ = ['configure', 'AccessLog', 'JsonFormatter', 'FORMATS']

FORMATS = ('text', 'json')
_TEXT = '%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s'


def configure(level, log_format='text'):
    """Log ``level`` and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == 'json' else logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "pid", "message"}``, with
    ``request_id`` and ``route`` while a request is served and ``exception``
    (the traceback) when there is one."""

    def format(self, record):
        entry = {'time': _iso(record.created), 'level': record.levelname.lower(), 'logger': record.name,
                 'pid': record.process, 'message': record.getMessage()}
        from apiphant.current import current  # imported at first use: this module loads before gevent patches
        request = current()
        if request.request_id is not None:
            entry['request_id'] = request.request_id
            if request.route is not None:
                entry['route'] = request.route.path
        if record.exc_info:
            entry['exception'] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def _iso(seconds):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(seconds)) + '.%03d' % (seconds % 1 * 1000)


class AccessLog:
    """One line per request, buffered: each request leaves a tuple, and the
    lines are made and written together at each tick of the front's reaper
    (once a second), or once 1,000 have gathered: a request never waits on
    the disk, nor pays for its line's formatting. Text: ``time client method
    path status duration request-id``; JSON: an object with those names.

    The lines are made in bulk, for less than formatting each would cost:
    the time is the tick's, the same for every line of a flush; the start
    of a line (time, client, method, path, status) is made once for a run
    of lines that share it; a duration is formatted once for each tenth of
    a millisecond it rounds to."""

    LIMIT = 1000
    DURATIONS = 10_000  # tenths of a millisecond kept formatted: up to a second

    def __init__(self, stream, log_format='text'):
        self.stream = stream
        self.json = log_format == 'json'
        self.entries = []
        self.stamp = ''
        self.durations = {}  # tenths of a millisecond: '12.3ms'
        self.tick()

    def __call__(self, client, method, path, status, took, request_id):
        """``path`` as bytes, ``status`` a status line, ``took`` seconds."""
        entries = self.entries
        entries.append((client, method, path, status, took, request_id))
        if len(entries) >= self.LIMIT:
            self.flush()

    def tick(self):
        """Write what gathered, and move the time stamp on (the second the
        following requests are logged with)."""
        self.flush()
        self.stamp = time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime())

    def flush(self):
        if not self.entries:
            return
        entries, self.entries = self.entries, []
        try:
            self.stream.write(self._json(entries) if self.json else self._text(entries))
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _text(self, entries):
        parts = []
        durations = self.durations
        shared = start = None
        for client, method, path, status, took, request_id in entries:
            if (client, method, path, status) != shared:
                shared = (client, method, path, status)
                start = f'{self.stamp} {client} {method} {path.decode("latin-1")} {status[:3]} '
            tenths = _truncate(took * 10_000 + 0.5)
            parts += (start, durations.get(tenths) or self._duration(tenths), ' ', request_id, '\n')
        return ''.join(parts)

    def _duration(self, tenths):
        text = '%d.%dms' % divmod(tenths, 10)
        if len(self.durations) < self.DURATIONS:
            self.durations[tenths] = text
        return text

    def _json(self, entries):
        return ''.join(orjson.dumps({
            'time': self.stamp, 'level': 'info', 'request_id': request_id, 'client': client, 'method': method,
            'route': path.decode('latin-1'), 'status': int(status[:3]), 'duration_ms': round(took * 1000, 3),
        }).decode() + '\n' for client, method, path, status, took, request_id in entries)


_truncate = float.__trunc__
