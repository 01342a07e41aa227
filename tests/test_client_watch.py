"""apiphant.client's watch against real servers of tests/products/liveproduct
(heartbeats every 0.2 s): events in order, resumes with Last-Event-ID after
a drain and a restart, a cut, a silent connection, a reset, a 401 answered
by a fresh token, errors raised without a second try, heartbeat ids; and
the text/event-stream parser (apiphant.sse) on its own.

Connections go through a real TCP relay where a test must end, hold off or
silence them; each watch is read by a thread of its own, so that a missing
event fails the test instead of hanging it."""
import contextlib
import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from apiphant import errors
from apiphant.client import Client, Event, Login, NetworkError, Timeout, Watch
from apiphant.pytest_plugin import ServedProduct
from apiphant.sse import Parser
from conftest import PRODUCTS

LIVE = PRODUCTS / 'liveproduct'
FAST = ('--watch-heartbeat', '0.2', '--access-log', 'off')


def serve(database, *args):
    return ServedProduct(LIVE, *FAST, *args, env={'APIPHANT_DATABASE_URL': f'sqlite:///{database}'}).start()


@pytest.fixture(scope='module')
def live(tmp_path_factory):
    server = serve(tmp_path_factory.mktemp('watch') / 'live.sqlite3')
    yield server
    server.stop()


@pytest.fixture
def writer(live):
    with Client(live.url) as client:
        yield client


def recording(url, **options):
    """A Client that keeps the responses it gets (their heads) in ``responses``."""
    api = Client(url, **options)
    api.responses = []
    api.session.hooks['response'].append(lambda response, *args, **kwargs: api.responses.append(response))
    return api


class Reading:
    """A watch iterated by a thread of its own: ``take(n)`` waits for its
    next ``n`` events (what it raised is raised)."""

    def __init__(self, watch):
        self.watch, self.queue = watch, queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.watch.close()
        self.thread.join(5)
        assert not self.thread.is_alive(), 'close() did not end the loop'

    def _read(self):
        try:
            for event in self.watch:
                self.queue.put(event)
        except Exception as error:
            self.queue.put(error)
        self.queue.put(StopIteration())

    def take(self, count=None, timeout=5.0):
        taken, deadline = [], time.monotonic() + timeout
        while len(taken) < (count or 1):
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f'{count or 1} event(s) expected within {timeout} s, got {taken}')
            if isinstance(item, BaseException):
                raise item
            taken.append(item)
        return taken if count else taken[0]

    def nothing_more(self):
        assert self.queue.empty(), self.queue.get()


class Relay:
    """A TCP relay to ``upstream`` (host, port; it may change) that can cut
    its connections, hold new ones off (closed at once) and freeze the
    server's bytes on the open ones (read and dropped)."""

    def __init__(self, server):
        self.upstream = (server.host, server.port)
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.url = f'http://127.0.0.1:{self.listener.getsockname()[1]}'
        self.refusing = False
        self.pairs = []  # [client socket, upstream socket, frozen]

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.listener.close()
        self.cut()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                if self.refusing:
                    raise OSError('refusing')
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = [client, upstream, False]
            self.pairs.append(pair)
            threading.Thread(target=_pump, args=(client, upstream, lambda: False), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, lambda: pair[2]), daemon=True).start()

    def cut(self):
        """Close every open connection, both ways, without an end of body."""
        for client, upstream, _ in self.pairs:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self.pairs.clear()

    def freeze(self):
        for pair in self.pairs:
            pair[2] = True


def _pump(source, sink, frozen):
    try:
        while data := source.recv(65536):
            if not frozen():
                sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def kinds(events):
    return [(event.event, event.data.get('id')) for event in events]


# --- events ---------------------------------------------------------------------------------------------

def test_events_come_in_order_as_the_where_sees_the_rows(live, writer):
    with Client(live.url) as api, Reading(api.v0.tasks.watch(where={'done': False})) as reading:
        ready = reading.take()
        assert (ready.event, ready.data) == ('ready', {}) and type(ready) is Event
        a = writer.v0.tasks.create(title='a')
        b = writer.v0.tasks.create(title='b', done=True)  # outside the where: no event
        writer.v0.tasks.update(id=a.id, version=a.version, done=True)  # out of the where: a delete
        b2 = writer.v0.tasks.update(id=b.id, version=b.version, done=False)  # into it: a create
        b3 = writer.v0.tasks.update(id=b.id, version=b2.version, points=2)
        writer.v0.tasks.delete(id=b.id)
        events = reading.take(5)
        assert [(event.event, event.data) for event in events] == [
            ('create', a), ('delete', {'id': a.id}), ('create', b2), ('update', b3), ('delete', {'id': b.id})]
        assert events[0].data.title == 'a'  # a Request: attribute access
        ids = [int(event.id) for event in (ready, *events)]
        assert ids == sorted(set(ids))
        assert reading.watch.last_event_id == events[-1].id


def test_a_watch_is_what_an_action_named_watch_gives_and_sends_nothing_until_iterated(live):
    with recording(live.url) as api:
        watch = api.v0.tasks.watch({'where': {'done': False}})
        assert isinstance(watch, Watch) and watch.path == '/api/v0/tasks/watch'
        assert watch.payload == b'{"where":{"done":false}}' and watch.last_event_id is None
        assert api.watch('/api/v0/tasks/watch', last_event_id=7).last_event_id == '7'
        assert api.responses == []
        for event in watch:
            assert event.event == 'ready'
            break
        sent = api.responses[0].request
        assert (sent.method, sent.headers['Accept'], sent.headers['Content-Type']) == (
            'POST', 'text/event-stream', 'application/json')
        assert 'Last-Event-ID' not in sent.headers


def test_leaving_the_loop_closes_the_connection_and_the_next_loop_resumes(tmp_path):
    server = serve(tmp_path / 'capped.sqlite3', '--max-watchers-per-client', '1')
    try:
        with Client(server.url, max_retry_after=1) as api:
            watch = api.v0.tasks.watch()
            for event in watch:
                break
            api.v0.tasks.create(title='while away')
            assert event.event == 'ready'
            with Reading(watch) as reading:  # the slot is free again: the first stream is closed
                assert kinds(reading.take(2)) == [('create', 1), ('ready', None)]
                with pytest.raises(errors.TooManyRequests) as caught:  # its Retry-After (5) > max_retry_after
                    next(iter(api.v0.tasks.watch()))
                assert caught.value.retry_after == 5
    finally:
        server.stop()


def test_close_from_another_thread_ends_the_loop_at_once(live):
    with Client(live.url) as api:
        watch = api.v0.tasks.watch()
        with Reading(watch) as reading:
            assert reading.take().event == 'ready'
            started = time.monotonic()
            watch.close()
            reading.thread.join(2)
            assert not reading.thread.is_alive() and time.monotonic() - started < 1
            assert isinstance(reading.queue.get_nowait(), StopIteration)  # ended, nothing raised
        assert watch.closed and list(watch) == []


# --- resuming -------------------------------------------------------------------------------------------

def test_a_watch_resumes_after_a_drain_and_a_restart_missing_nothing(tmp_path):
    database = tmp_path / 'restart.sqlite3'
    first = serve(database)
    second = None
    try:
        with Relay(first) as relay, recording(relay.url, max_backoff=1) as api, Reading(api.v0.tasks.watch()) as reading:
            assert reading.take().event == 'ready'
            with Client(first.url) as writer:
                one = writer.v0.tasks.create(title='one')
            seen = reading.take()
            assert kinds([seen]) == [('create', one.id)]
            relay.refusing = True  # until the second server serves
            assert first.stop() == 0  # SIGTERM: the stream ends cleanly
            second = serve(database)
            with Client(second.url) as writer:
                two, three = writer.v0.tasks.create(title='two'), writer.v0.tasks.create(title='three')
            relay.upstream, relay.refusing = (second.host, second.port), False
            assert kinds(reading.take(3)) == [('create', two.id), ('create', three.id), ('ready', None)]
            reading.nothing_more()
            assert [response.status_code for response in api.responses] == [200, 200]
            assert api.responses[1].request.headers['Last-Event-ID'] == seen.id
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_watch_resumes_after_a_cut_missing_nothing_and_nothing_twice(live, writer):
    with Relay(live) as relay, recording(relay.url, max_backoff=1) as api, Reading(api.v0.tasks.watch()) as reading:
        assert reading.take().event == 'ready'
        one = writer.v0.tasks.create(title='one')
        assert kinds([reading.take()]) == [('create', one.id)]
        relay.refusing = True
        relay.cut()
        two = writer.v0.tasks.create(title='two')
        writer.v0.tasks.update(id=one.id, version=one.version, points=5)
        relay.refusing = False
        assert kinds(reading.take(3)) == [('create', two.id), ('update', one.id), ('ready', None)]
        three = writer.v0.tasks.create(title='three')
        assert kinds([reading.take()]) == [('create', three.id)]
        reading.nothing_more()
        assert len(api.responses) == 2


def test_a_silent_connection_is_given_up_after_the_idle_timeout(live, writer):
    with Relay(live) as relay, recording(relay.url) as api, \
            Reading(api.watch('v0/tasks/watch', idle_timeout=0.6)) as reading:
        assert reading.take().event == 'ready'
        relay.freeze()  # open, but no byte comes: no heartbeat either
        started = time.monotonic()
        one = writer.v0.tasks.create(title='one')
        assert kinds(reading.take(2)) == [('create', one.id), ('ready', None)]
        assert 0.6 <= time.monotonic() - started < 4
        assert len(api.responses) == 2


def test_heartbeat_ids_move_the_last_event_id_and_the_resume_starts_there(live, writer):
    with Relay(live) as relay, recording(relay.url) as api, \
            Reading(api.v0.tasks.watch(where={'title': 'nobody'})) as reading:
        ready = reading.take()
        writer.v0.tasks.create(title='someone')
        writer.v0.tasks.create(title='someone else')
        deadline = time.monotonic() + 3
        while reading.watch.last_event_id == ready.id and time.monotonic() < deadline:
            time.sleep(0.05)
        moved = reading.watch.last_event_id
        assert int(moved) >= int(ready.id) + 2
        reading.nothing_more()  # a heartbeat is no event
        relay.cut()
        again = reading.take()
        assert (again.event, again.id) == ('ready', moved)
        assert api.responses[1].request.headers['Last-Event-ID'] == moved


def test_an_id_the_server_cannot_resume_from_is_a_reset(live):
    with Client(live.url) as api, Reading(api.watch('v0/tasks/watch', last_event_id=10 ** 12)) as reading:
        reset, ready = reading.take(2)
        assert (reset.event, reset.data, ready.event) == ('reset', {}, 'ready')
        assert reset.id == ready.id and int(ready.id) < 10 ** 12


def test_a_resume_past_the_retention_is_a_reset(tmp_path):
    database = tmp_path / 'retention.sqlite3'
    first = serve(database, '--watch-retention', '1')
    second = None
    try:
        with Client(first.url) as api:
            watch = api.v0.tasks.watch()
            events = iter(watch)
            assert next(events).event == 'ready'
            api.v0.tasks.create(title='seen')
            assert next(events).event == 'create'
            events.close()
            api.v0.tasks.create(title='missed')
            api.v0.tasks.create(title='missed too')
        first.stop()
        second = serve(database, '--watch-retention', '1')
        deadline = time.monotonic() + 5
        while logged(database) > 1:  # the pruner keeps the newest change only
            assert time.monotonic() < deadline, 'the change log was not pruned'
            time.sleep(0.1)
        watch.client = Client(second.url)
        with watch.client, Reading(watch) as reading:
            assert [event.event for event in reading.take(2)] == ['reset', 'ready']
    finally:
        first.stop()
        if second is not None:
            second.stop()


def logged(database):
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute('SELECT count(*) FROM apiphant_changes').fetchone()[0]


# --- tokens and errors ----------------------------------------------------------------------------------

class Refreshed:
    """A token callable with refresh(), as client.Login is: an expired token until refreshed."""

    def __init__(self, server):
        self.server, self.refreshed = server, 0
        self.token = server.token(7, minutes=-1)

    def __call__(self):
        return self.token

    def refresh(self):
        self.refreshed += 1
        self.token = self.server.token(7)


def test_a_401_gets_a_fresh_token_from_refresh_once(live):
    token = Refreshed(live)
    with recording(live.url, token=token) as api, Reading(api.v0.notes.watch()) as reading:
        assert reading.take().event == 'ready'
        assert [response.status_code for response in api.responses] == [401, 200]
        assert token.refreshed == 1
        assert api.responses[1].request.headers['Authorization'] == f'Bearer {token.token}'


def test_a_401_asks_a_plain_callable_again_and_a_second_401_is_raised(live):
    given = iter([live.token(7, minutes=-1), live.token(7)])
    with recording(live.url, token=lambda: next(given)) as api, Reading(api.v0.notes.watch()) as reading:
        assert reading.take().event == 'ready'
        assert [response.status_code for response in api.responses] == [401, 200]
    for token in (lambda: live.token(7, minutes=-1), live.token(7, minutes=-1)):
        with recording(live.url, token=token) as api:
            with pytest.raises(errors.Unauthorized):
                next(iter(api.v0.notes.watch()))
            assert [response.status_code for response in api.responses] == ([401, 401] if callable(token) else [401])


def test_an_expired_token_ends_the_stream_and_a_fresh_one_resumes_it(live):
    # Valid for 1 to 2 s: 3 s in the past, within the server's 5 s of leeway.
    with recording(live.url, token=lambda: live.token(7, minutes=-3 / 60)) as api, \
            Client(live.url, token=live.token(7)) as author, Client(live.url, token=live.token(8)) as other, \
            Reading(api.v0.notes.watch()) as reading:
        assert reading.take().event == 'ready'
        other.v0.notes.create(text='not for 7')
        shared = other.v0.notes.create(text='for all', shared=True)
        mine = author.v0.notes.create(text='mine')
        events = reading.take(2)
        assert kinds(events) == [('create', shared.id), ('create', mine.id)]
        assert reading.take(timeout=5).event == 'ready'  # the stream ended at the expiry; a new token resumed
        assert [response.status_code for response in api.responses] == [200, 200]
        first, second = (response.request.headers for response in api.responses)
        assert first['Authorization'] != second['Authorization']
        assert int(second['Last-Event-ID']) >= int(events[1].id)


def test_a_400_is_raised_without_a_second_try(live):
    with recording(live.url) as api:
        with pytest.raises(errors.Invalid) as caught:
            next(iter(api.v0.tasks.watch(where={'nope': 1})))
        assert (caught.value.field, caught.value.path) == ('where', '/api/v0/tasks/watch')
        with pytest.raises(errors.Invalid) as caught:
            next(iter(api.watch('v0/tasks/watch', last_event_id='yesterday')))
        assert caught.value.field == 'Last-Event-ID'
        with pytest.raises(errors.NotFound):
            next(iter(api.v0.plain.watch()))  # a table that is not watched
        assert [response.status_code for response in api.responses] == [400, 400, 404]


def test_how_long_a_watch_waits_before_connecting_again(live):
    api = Client(live.url, backoff=0.2, max_backoff=5, max_retry_after=30)
    watch = api.v0.tasks.watch()
    busy = errors.ServiceUnavailable.__new__(errors.ServiceUnavailable)
    errors.ApiError.__init__(busy, 503, 'busy')
    busy.retry_after = 3.0
    assert watch.delay(busy, 0) == 3.0
    slow = errors.TooManyRequests.__new__(errors.TooManyRequests)
    errors.ApiError.__init__(slow, 429, 'slow down')
    slow.retry_after = 60.0
    assert watch.delay(slow, 0) is None  # longer than max_retry_after: raised
    slow.retry_after = None
    for failure in (slow, NetworkError('down'), Timeout('silent'), errors.ApiError(502), errors.ApiError(408)):
        assert watch.delay(failure, 0) == 1.0  # the server's retry
        for failures, ceiling in ((1, 2.0), (2, 4.0), (3, 5.0), (9, 5.0)):
            assert ceiling / 2 <= watch.delay(failure, failures) <= ceiling
    for status in (400, 403, 404, 409):
        assert watch.delay(errors.ApiError(status), 0) is None
    watch.retry = 8.0  # a server's retry longer than max_backoff is still waited
    assert watch.delay(NetworkError('down'), 5) == 8.0


# --- the parser -----------------------------------------------------------------------------------------

def blocks(*chunks, last_event_id=None):
    parser = Parser(last_event_id)
    found = [(block.last_event_id, block.event, block.data) for chunk in chunks for block in parser.feed(chunk)]
    return found, parser


def test_the_parser_reads_events_comments_ids_and_retry():
    found, parser = blocks(
        b'\xef\xbb\xbfretry: 1000\n\n'
        b': a comment\nid: 3\nevent: create\ndata: {"id": 1,\ndata:  "x": 2}\n\n'
        b'data\n\n'  # a field without a colon: data ''
        b': \nid: 5\n\n'  # a heartbeat: the id moves, no event
        b'id\nevent: delete\ndata: 1\nunknown: field\n\n'  # id without a value: the empty id
        b'data: plain\n\n'
        b'id: 9\0\ndata: x\nretry: 2s\n\n')  # an id with NUL and a retry that is not digits: ignored
    assert found == [
        (None, None, None),
        ('3', 'create', '{"id": 1,\n "x": 2}'),
        ('3', 'message', ''),
        ('5', None, None),
        ('', 'delete', '1'),
        ('', 'message', 'plain'),
        ('', 'message', 'x'),
    ]
    assert parser.retry == 1000 and parser.last_event_id == ''


def test_the_parser_takes_any_line_end_and_bytes_cut_anywhere():
    stream = 'id: 1\r\nevent: é\rdata: ü\n\r\nid: 2\r\r'.encode()
    whole, _ = blocks(stream)
    assert whole == [('1', 'é', 'ü'), ('2', None, None)]
    for cut in range(1, len(stream)):
        assert blocks(stream[:cut], stream[cut:])[0] == whole, cut
    assert blocks(*(bytes([byte]) for byte in stream))[0] == whole


def test_the_parser_drops_a_block_the_stream_ends_in_and_keeps_the_id_it_started_with():
    found, parser = blocks(b'id: 4\ndata: half', last_event_id='2')
    assert found == [] and parser.last_event_id == '2'
    assert blocks(b'data: x\n\n', last_event_id='2')[0] == [('2', 'message', 'x')]
    assert blocks(b'data: \xff\n\n')[0] == [(None, 'message', '\ufffd')]  # not UTF-8


def test_login_refresh_gets_a_new_access_token_at_once(tmp_path):
    database = {'APIPHANT_DATABASE_URL': f'sqlite:///{tmp_path / "accounts.sqlite3"}'}
    login, password = 'watch@example.org', 'a password of the watch tests'
    added = subprocess.run([sys.executable, '-m', 'apiphant', 'users', str(PRODUCTS / 'accounts_product'), 'add',
                            login, '--password-stdin'], input=password + '\n', capture_output=True, text=True,
                           timeout=120, env={**os.environ, **database})
    assert added.returncode == 0, added.stderr
    with ServedProduct(PRODUCTS / 'accounts_product', env=database) as server:
        token = Login(server.url, login, password)
        first = token()
        assert token() == first  # kept while fresh
        fresh = token.refresh()
        assert fresh != first and token() == fresh
        token.close()
