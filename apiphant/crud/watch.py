"""Live tables: ``watch`` answers a stream of server-sent events, one for
each change of a row that matches the watcher's ``where`` and the rows its
caller may list, fed from the database's change log (``changes``).

The events, as the row stands for this watcher:

- ``create``: the row came into its view (created, or changed to match),
  ``data`` the row as ``read`` answers it;
- ``update``: a row in its view changed and still is, likewise;
- ``delete``: the row left its view (deleted, or changed not to match, or
  its rules no longer let the caller list it), ``data`` ``{"id": N}``;
- ``ready``: the stream is live (after the changes missed, on a resume):
  list now to start from a complete picture;
- ``reset``: the changes since the client's ``Last-Event-ID`` are no
  longer all in the log (older than ``--watch-retention``): list again.

Each event's ``id`` is the change's number in the log, so a client that
reconnects with ``Last-Event-ID`` gets every change it missed, in order,
none twice. A comment with the current ``id`` every ``--watch-heartbeat``
seconds keeps proxies from closing a quiet stream, and moves a quiet
client's Last-Event-ID along, so that it does not fall out of the retention
while nothing of its concern happens.

One ``Live`` per database and process reads each new change once (woken
by PostgreSQL's NOTIFY from any process on any host, by the commit in this
process, and, for SQLite's other processes, by polling every
``POLL_SQLITE`` seconds while someone watches), and matches it in Python
against the watchers of its table: those indexed under the values the
changed row had or has, and those that cannot be indexed. A stream holds
no greenlet (``apiphant.stream``).
"""
import collections
import logging
import time
from urllib.parse import parse_qsl

import gevent
import gevent.event
import gevent.lock
import orjson

from apiphant import metrics
from apiphant.codec import decode, encode
from apiphant.current import context
from apiphant.dispatch import NOT_JSON, json_media_type
from apiphant.errors import Invalid, ServiceUnavailable, TooManyRequests, UnsupportedMediaType
from apiphant.stream import Stream, frame
from apiphant.crud import changes, fields, query
from apiphant.crud import settings as handed_settings

__all__ = ['watch', 'live', 'Live', 'POLL_SQLITE', 'POLL_POSTGRESQL']

log = logging.getLogger('apiphant.crud')

POLL_SQLITE = 0.05  # seconds between two reads of the log by a SQLite process that has watchers
POLL_POSTGRESQL = 1.0  # seconds, likewise, for a NOTIFY lost with a connection
BATCH = 1000  # changes read at once
SLICE = 500  # events sent in a row before the hub's other work gets a turn
_UNKNOWN = object()
CONDITIONS = 10_000  # distinct conditions kept compiled; past it, forgotten (watchers keep theirs)
RECENT = 5000  # changes kept in memory, for the resumes that need no query
RETRY = b'retry: 1000\n\n'  # a client reconnects after a second
_lives = {}  # Database: Live


def live(database):
    """The ``Live`` of ``database`` in this process."""
    found = _lives.get(database)
    if found is None:
        settings = handed_settings.handed()
        found = _lives[database] = Live(
            database, retention=settings['watch_retention'], heartbeat=settings['watch_heartbeat'],
            max_watchers=settings['max_watchers'], max_per_client=settings['max_watchers_per_client'])
    return found


def watch(table, request):
    """The ``Stream`` of ``request`` (``where``) on ``table``: its checks
    (where, access, limits) are made now, so that a bad one is an error
    answer; its events begin once the front sent the head."""
    fields.only(request, ('where',))
    database = table.prepare()
    place = live(database)
    place.know(table)
    matches = place.matches(table, request)
    last = _last_event_id()
    client = context.client if context else None
    auth = context.auth if context else None
    place.admit(client)
    watcher = Watcher(table.name, matches, client, getattr(auth, 'expires', None))
    place.count_in(watcher)
    return Stream(lambda stream: place.join(watcher, stream, last), lambda stream: place.leave(watcher))


def action(table):
    """The route function of ``table``'s ``watch``: it gets the WSGI
    environ (GET ``?where=JSON``, for EventSource, or POST with a JSON
    body) and answers a ``Stream``."""
    def watch_action(environ):
        if environ['REQUEST_METHOD'] == 'GET':
            request = {}
            for name, value in parse_qsl(environ.get('QUERY_STRING', ''), keep_blank_values=True):
                if name != 'where' or name in request:
                    raise Invalid(name, 'a watch takes where=JSON in its query string, once')
                try:
                    request['where'] = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise Invalid('where', 'should be JSON: ?where={"done": false}, URL-encoded') from None
            request = decode(encode(request))  # the request as a body of it would be: attribute access, limits
        else:
            body = environ['wsgi.input'].read()
            if body and not json_media_type(environ.get('CONTENT_TYPE', '').encode('latin-1') or None):
                raise UnsupportedMediaType(NOT_JSON)  # as every action says (a form crosses sites unasked)
            request = decode(body)
        return table.watch(request)
    return watch_action


def _last_event_id():
    """The client's ``Last-Event-ID`` (a number), or None."""
    if not context:
        return None
    given = context.headers.get('Last-Event-ID')
    if given is None or given == '':
        return None
    if not (given.isascii() and given.isdigit()) or len(given) > 18:  # '²' is a digit to isdigit()
        raise Invalid('Last-Event-ID', 'the id of the last event received, a number')
    return int(given)


class Watcher:
    """One client's watch: the table, its conditions (``Match``es: where,
    rules, scopes; all hold), when its caller's token expires."""

    __slots__ = ('table', 'matches', 'client', 'expires', 'stream', 'backlog', 'key')

    def __init__(self, table, matches, client, expires):
        self.table, self.matches, self.client, self.expires = table, matches, client, expires
        self.stream = None
        self.backlog = []  # events that came while it caught up; None once it is live
        self.key = _key(matches)  # (name, values): what any row it sees has; or None

    def sees(self, row):
        if row is None:
            return False
        for match in self.matches:
            if not match(row):
                return False
        return True

    def deliver(self, event):
        """Send ``event``, ``(data, chunk)``; or keep it while the watcher catches up."""
        if self.backlog is not None:
            self.backlog.append(event)
        else:
            self.stream.send(*event)


def _key(matches):
    best = None
    for match in matches:
        for name, values in match.keys.items():
            if best is None or len(values) < len(best[1]):
                best = (name, values)
    return best


class _Never:
    """The Match of a rule no row passes for this caller."""
    keys = {}

    def __call__(self, row):
        return False


_NEVER = _Never()


class Change:
    """A change read from the log, decoded once for all its watchers."""

    __slots__ = ('seq', 'table', 'at', 'before', 'after', 'raw_after', 'key', '_events')

    def __init__(self, seq, table, at, before, after, kinds):
        self.seq, self.table, self.at = seq, table, at  # the log's op is told by the rows: no before, a create
        self.before = None if before is None else _typed(orjson.loads(before), kinds)
        self.raw_after = None if after is None else orjson.loads(after)
        self.after = None if self.raw_after is None else _typed(dict(self.raw_after), kinds)
        self.key = (self.after or self.before)['id']
        self._events = {}

    def event(self, kind, visible):
        """The event, ``(bytes, the same as a chunk)``, made once per kind."""
        found = self._events.get(kind)
        if found is None:
            if kind == 'delete':
                data = b'{"id":%d}' % self.key
            else:
                data = encode({name: self.raw_after.get(name) for name in visible})
            event = b'id: %d\nevent: %s\ndata: %s\n\n' % (self.seq, kind.encode(), data)
            found = self._events[kind] = (event, frame(event))
        return found


def _typed(row, kinds):
    for name, parse in kinds:
        value = row.get(name)
        if value is not None:
            row[name] = parse(value)
    return row


class _Shape:
    """What a change of a table needs to be decoded and sent: the columns
    whose JSON is parsed back (dates), the names ``read`` answers."""

    __slots__ = ('kinds', 'visible')

    def __init__(self, table):
        self.kinds = [(name, column.kind.parse) for name, column in table.columns.items()
                      if column.kind.name in ('datetime', 'date')]
        self.visible = list(table.visible_names)


class _Table:
    """The watchers of one table in one process, indexed by equality."""

    __slots__ = ('unkeyed', 'keyed', 'count')

    def __init__(self):
        self.unkeyed = set()
        self.keyed = {}  # name: {value: set of watchers}
        self.count = 0

    def add(self, watcher):
        self.count += 1
        if watcher.key is None:
            self.unkeyed.add(watcher)
            return
        name, values = watcher.key
        by_value = self.keyed.setdefault(name, {})
        for value in values:
            by_value.setdefault(value, set()).add(watcher)

    def remove(self, watcher):
        self.count -= 1
        if watcher.key is None:
            self.unkeyed.discard(watcher)
            return
        name, values = watcher.key
        by_value = self.keyed[name]
        for value in values:
            found = by_value.get(value)
            if found is not None:
                found.discard(watcher)
                if not found:
                    del by_value[value]
        if not by_value:
            del self.keyed[name]

    def candidates(self, change):
        """The watchers that may see ``change``: a new set (sends may end streams meanwhile)."""
        found = set(self.unkeyed)
        for name, by_value in self.keyed.items():
            for row in (change.before, change.after):
                if row is not None:
                    hit = by_value.get(row.get(name))
                    if hit:
                        found |= hit
        return found

    def watchers(self):
        found = set(self.unkeyed)
        for by_value in self.keyed.values():
            for hit in by_value.values():
                found |= hit
        return found


class Live:
    """The watchers of one database in this process, and the greenlets
    that feed them, from the first watcher on: the reader of the log, the
    heartbeat and PostgreSQL's listener; and, in a server, the pruner."""

    def __init__(self, database, *, retention=600.0, heartbeat=15.0, max_watchers=20_000, max_per_client=100):
        self.database = database
        self.retention, self.heartbeat = retention, heartbeat
        self.max_watchers, self.max_per_client = max_watchers, max_per_client
        self.postgresql = database.dialect == 'postgresql'
        self.tables = {}  # name: _Table, of the tables watched here now
        self.shapes = {}  # name: _Shape, of every table that records changes in the database
        self.watching = 0  # watchers counted in (joined or about to)
        self.clients = collections.Counter()
        self.conditions = {}  # the JSON of (table, where, bound rule, scopes): their Matches
        self.frontier = None  # the number of the last change fanned out; None: not read yet
        self.recent = collections.deque(maxlen=RECENT)  # Change, for resumes
        self.recent_from = None  # the frontier when ``recent`` began: it holds every change after it
        self.wake = gevent.event.Event()
        self.reading = gevent.lock.Semaphore()
        self.greenlets = []
        self.pruner = None
        database.on_changes = self.wake.set

    # Admission

    def admit(self, client):
        """503 past the watchers of the process, 429 past the client's."""
        refused = None
        if self.watching >= self.max_watchers:
            refused = ServiceUnavailable(retry_after=5)
        elif client is not None and self.clients[client] >= self.max_per_client:
            refused = TooManyRequests(retry_after=5)
        if refused is not None:
            if metrics.PROCESS is not None:
                metrics.PROCESS.watch_refused(refused.status)
            raise refused

    def count_in(self, watcher):
        self.watching += 1
        self.clients[watcher.client] += 1
        if metrics.PROCESS is not None:
            metrics.PROCESS.watchers += 1

    def matches(self, table, request):
        """The ``Match``es a row must pass for the caller of ``request``:
        its where, the table's list rule, its scopes; the same tuple for
        watchers of the same conditions (the fan-out judges it once)."""
        where, rule = request.get('where'), table.rules.listing()
        scopes = [scoped for scoped in (function(request) for function in table.scopes) if scoped is not None]
        try:
            key = orjson.dumps([table.name, where, rule, scopes], option=orjson.OPT_SORT_KEYS)
        except TypeError:  # a value JSON does not hold: compiled for this watcher alone (the checks say why)
            key = None
        found = self.conditions.get(key) if key is not None else None
        if found is not None:
            return found
        dialect = self.database.dialect
        parts = [query.compile_match(where, table.query_columns, table.limits, dialect)]
        parts.append(_NEVER if rule is False else
                     query.compile_match(rule, table.rules.columns, query.Limits(), dialect) if rule else None)
        parts += [query.compile_match(scoped, table.scope_columns, query.Limits(), dialect) for scoped in scopes]
        found = tuple(part for part in parts if part is not None)
        if key is not None:
            if len(self.conditions) >= CONDITIONS:
                self.conditions.clear()
            self.conditions[key] = found
        return found

    # Joining and leaving

    def join(self, watcher, stream, last):
        """``watcher`` begins on ``stream``: the changes after ``last`` (its
        Last-Event-ID) it missed, or a reset, then ready, then live."""
        watcher.stream = stream
        if not stream.send(RETRY):
            return
        self.start()
        try:
            with self.reading:  # ready says: every change committed before the watch is accounted for
                self._catch_up()
            place = self.tables.get(watcher.table)
            if place is None:
                place = self.tables[watcher.table] = _Table()
            place.add(watcher)  # from now on, new changes reach its backlog
            upto = self.frontier
            replay, reset = [], False
            if last is not None and last != upto:
                replay, reset = self._missed(watcher, last, upto)
        except ServiceUnavailable:  # the database is down (logged): the client comes back after its retry
            stream.end(cut=True)
            return
        if reset:
            stream.send(b'id: %d\nevent: reset\ndata: {}\n\n' % upto)
        for event in replay:
            if not stream.send(*event):
                return
        stream.send(b'id: %d\nevent: ready\ndata: {}\n\n' % upto)
        backlog, watcher.backlog = watcher.backlog, None
        for event in backlog:
            stream.send(*event)

    def _missed(self, watcher, last, upto):
        """The events of the changes in (last, upto] that ``watcher``
        sees, and whether they are no longer all known (a reset)."""
        if last > upto:
            return [], True  # a number from elsewhere (another database)
        if self.recent_from is not None and last >= self.recent_from:
            found = [change for change in self.recent if last < change.seq <= upto]
            if found and found[0].at < time.time() - self.retention:
                return [], True  # gone longer than the retention: as the log would say
            found = [change for change in found if change.table == watcher.table]
        else:
            first, rows = changes.missed(self.database, watcher.table, last, upto)
            if first is None or last < first - 1:
                return [], True
            found = [self._change(*row) for row in rows]
        shape = self.shapes[watcher.table]
        events = []
        for change in found:
            event = _event(watcher, change, shape.visible)
            if event is not None:
                events.append(event)
        return events, False

    def leave(self, watcher):
        self.watching -= 1
        if metrics.PROCESS is not None:
            metrics.PROCESS.watchers -= 1
        self.clients[watcher.client] -= 1
        if not self.clients[watcher.client]:
            del self.clients[watcher.client]
        if watcher.stream is None:
            return
        place = self.tables.get(watcher.table)
        if place is not None:
            place.remove(watcher)
            if not place.count:
                del self.tables[watcher.table]

    # Reading the log

    def know(self, table):
        """``table`` records its changes in this database."""
        if table.name not in self.shapes:
            self.shapes[table.name] = _Shape(table)

    def start(self):
        """The greenlets, once (the first watcher)."""
        if self.greenlets:
            return
        self.greenlets = [gevent.spawn(self._read), gevent.spawn(self._beat)]
        if self.postgresql:
            self.greenlets.append(gevent.spawn(self._listen))

    def _read(self):
        poll = POLL_POSTGRESQL if self.postgresql else POLL_SQLITE
        version = None
        while True:
            woken = self.wake.wait(poll)
            self.wake.clear()
            if not woken and not self.postgresql:  # a poll: read only when a commit changed the file
                try:
                    seen, version = version, self.database.data_version()
                except Exception:  # the read below says what (and sleeps)
                    seen = None
                if seen is not None and seen == version:
                    continue
            if not self.tables:
                if self.frontier is not None:
                    with self.reading:
                        if not self.tables:  # nobody reads here now: start again from the log's end
                            self.frontier = self.recent_from = None
                            self.recent.clear()
                continue
            try:
                with self.reading:
                    self._catch_up()
            except ServiceUnavailable:
                gevent.sleep(1.0)  # logged by storage
            except Exception:
                log.exception('reading the change log of %s failed', self.database)
                gevent.sleep(1.0)

    def _catch_up(self):
        """Read and fan out every change after the frontier (the caller holds ``reading``)."""
        if self.frontier is None:
            self.frontier = changes.bounds(self.database)[1] or 0
            self.recent_from = self.frontier
        while True:
            rows = changes.since(self.database, self.frontier, BATCH)
            for row in rows:
                change = self._change(*row)
                place = self.tables.get(change.table)
                if place is not None:
                    self._fan_out(place, change)
                if len(self.recent) == self.recent.maxlen:
                    self.recent_from = self.recent[0].seq
                self.recent.append(change)
                self.frontier = change.seq
            if len(rows) < BATCH:
                return

    def _fan_out(self, place, change):
        """Deliver ``change`` to the watchers of ``place`` that see it: one
        verdict per distinct set of conditions, the hub's other work let in
        every SLICE sends (the caller holds ``reading``, so no watcher joins
        and no heartbeat goes out meanwhile)."""
        visible = self.shapes[change.table].visible
        verdicts = {}
        sent = 0
        for watcher in place.candidates(change):
            event = verdicts.get(watcher.matches, _UNKNOWN)
            if event is _UNKNOWN:
                event = verdicts[watcher.matches] = _event(watcher, change, visible)
            if event is not None and not watcher.stream.ended:
                watcher.deliver(event)
                sent += 1
                if not sent % SLICE:
                    gevent.sleep(0)
        if metrics.PROCESS is not None:
            metrics.PROCESS.watch_events += sent

    def _change(self, seq, table, op, at, before, after):
        shape = self.shapes.get(table)
        return Change(seq, table, at, before, after, shape.kinds if shape is not None else ())

    def _listen(self):
        """PostgreSQL: a connection of its own, LISTENing; each notice wakes the reader."""
        import psycopg
        url = self.database.url.set(drivername='postgresql').render_as_string(hide_password=False)
        while True:
            try:
                connection = psycopg.connect(url, autocommit=True, connect_timeout=2)
                try:
                    connection.execute(f'LISTEN {changes.CHANNEL}')
                    self.wake.set()  # what came before the LISTEN
                    for _ in connection.notifies():
                        self.wake.set()
                finally:
                    connection.close()
            except Exception as error:
                log.warning('%s: listening for changes failed (%s); again in a second', self.database,
                            ' '.join(str(error).split()))
                gevent.sleep(1.0)

    def _beat(self):
        """Each heartbeat: a comment with the frontier to every live
        stream, and the end of those whose caller's token expired (the
        client comes back with a new one)."""
        while True:
            gevent.sleep(self.heartbeat)
            now = time.time()
            if self.frontier is None:
                continue
            with self.reading:  # not amid a fan-out: its events may be past the frontier
                beat = b': \nid: %d\n\n' % self.frontier
                sent = 0
                for place in list(self.tables.values()):
                    for watcher in place.watchers():
                        if watcher.expires is not None and watcher.expires <= now:
                            watcher.stream.end()
                        elif watcher.backlog is None and watcher.stream.send(beat):
                            sent += 1
                            if not sent % SLICE:
                                gevent.sleep(0)

    def serve(self):
        """The server starts: prune the log every minute (or half the
        retention), whether anyone watches or not."""
        if self.pruner is None:
            self.pruner = gevent.spawn(self._prune)

    def _prune(self):
        """The log's changes older than the retention go, and so do those
        kept in memory: a resume from before them is a reset."""
        while True:
            gevent.sleep(min(60.0, self.retention / 2) or 1.0)
            oldest = time.time() - self.retention
            while self.recent and self.recent[0].at < oldest:
                self.recent_from = self.recent.popleft().seq
            try:
                changes.prune(self.database, self.retention)
            except Exception as error:
                log.warning('%s: pruning the change log failed: %s', self.database, ' '.join(str(error).split()))


def _event(watcher, change, visible):
    """The event ``change`` is for ``watcher``, or None."""
    was, now = watcher.sees(change.before), watcher.sees(change.after)
    if now:
        return change.event('update' if was else 'create', visible)
    if was:
        return change.event('delete', visible)
    return None
