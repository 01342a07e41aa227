"""``GET /health`` and the database: 503 while it does not answer, 200
again once it does; and a ``Taken`` caught inside a product's own
transaction, which then goes on (a SAVEPOINT), on SQLite and PostgreSQL."""
import os
import socket
import threading
import time

import pytest
import requests

from conftest import PRODUCTS
from test_crud import BACKENDS, POSTGRESQL, PRODUCT, ok, post, serve, store

UNHEALTHY = {'error': '503 Service Unavailable', 'ok': False, 'database': 'unavailable'}


def health(server):
    return requests.get(f'{server.url}/health', timeout=10)


def until(server, status):
    """/health's answer once it is ``status``: the answer is kept for up to a second."""
    deadline = time.monotonic() + 10
    while True:
        response = health(server)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def unhealthy(response):
    assert response.status_code == 503, response.text
    assert response.json() == UNHEALTHY
    assert response.headers['Retry-After'] == '1'


class Relay:
    """A TCP relay to PostgreSQL that can be cut (every connection closed,
    none accepted) and mended, on the same port."""

    def __init__(self, port=5432):
        self.target = ('127.0.0.1', port)
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            self.port = probe.getsockname()[1]
        self.sockets, self.listener, self.lock = [], None, threading.Lock()

    def mend(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept, which would keep the port
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_health_says_a_sqlite_file_that_went_away(tmp_path):
    path = tmp_path / 'health.sqlite3'
    server = serve(PRODUCT, f'sqlite:///{path}')
    try:
        assert health(server).json() == {'ok': True}
        ok(server, 'tasks/create', {'title': 'before'})
        moved = tmp_path / 'elsewhere.sqlite3'
        os.rename(path, moved)
        unhealthy(until(server, 503))
        os.rename(moved, path)
        assert until(server, 200).json() == {'ok': True}
        assert 'Traceback' not in server.output
        assert str(path) not in health(server).text
    finally:
        server.stop()


def test_health_says_a_postgresql_that_stopped_answering(tmp_path):
    with store('postgresql', tmp_path):  # skips (or fails) when PostgreSQL is down
        pass
    relay = Relay()
    relay.mend()
    url = POSTGRESQL.replace('postgres@127.0.0.1:5432', f'postgres:sekret@127.0.0.1:{relay.port}')
    server = serve(PRODUCT, url, APIPHANT_DATABASE_WAIT='1')
    try:
        assert health(server).json() == {'ok': True}
        ok(server, 'tasks/list')
        relay.cut()
        response = until(server, 503)
        unhealthy(response)
        assert 'sekret' not in response.text and str(relay.port) not in response.text
        assert post(server, 'tasks/list').status_code == 503
        relay.mend()
        assert until(server, 200).json() == {'ok': True}
        assert ok(server, 'tasks/list', {'total': True})['meta']['total_objects'] >= 0
        assert 'sekret' not in server.output
        assert 'Traceback' not in server.output
    finally:
        server.stop()
        relay.cut()


def test_health_says_a_database_down_since_start_up():
    server = serve(PRODUCT, 'postgresql://postgres@127.0.0.1:1/test', APIPHANT_DATABASE_WAIT='1')
    try:
        assert server.wait_for_output('unavailable at start-up')
        unhealthy(health(server))
        documented = requests.get(f'{server.url}/api/openapi.json', timeout=10).json()['paths']['/health']
        assert '503' in documented['get']['responses']  # a product with tables: its /health can be 503
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def constrained(request, tmp_path):
    with store(request.param, tmp_path) as database:
        server = serve(PRODUCTS / 'crudconstraints', database.url)
        try:
            yield server, database
        finally:
            server.stop()


def test_a_taken_caught_in_a_transaction_lets_it_go_on(constrained):
    server, database = constrained
    first = ok(server, 'accounts/create', {'email': 'a@example.com'})
    answer = ok(server, 'signup/create', {'emails': ['b@example.com', 'a@example.com', 'c@example.com',
                                                     'b@example.com'], 'team': 'x'})
    assert answer['taken'] == ['a@example.com', 'b@example.com']
    assert len(answer['created']) == 2
    rows = ok(server, 'accounts/list', {'sort_by': 'id'})['data']
    assert [(row['id'], row['email']) for row in rows] == [
        (first['id'], 'a@example.com'), (answer['created'][0], 'b@example.com'), (answer['created'][1], 'c@example.com')]
    assert database.count('accounts') == 3
