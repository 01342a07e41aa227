"""The HTTP/1.1 front: strict framing, limits, keep-alive, pipelining,
deadlines (RFC 9112), through raw sockets."""
import contextlib
import socket
import threading
import time

import pytest
import requests

from conftest import PRODUCTS, raw_exchange

ECHO = b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
OK_ECHO = b'{"server":"proto"}'


def read_all(sock, timeout=5.0):
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b''.join(chunks)


def exchange_and_close(server, data):
    """Send, read until the server closes; the server must close."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(data)
        return read_all(sock)


SMUGGLING = {
    'CL+TE': ECHO + b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'TE+CL': ECHO + b'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
    'duplicate CL': ECHO + b'Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}',
    'differing CL': ECHO + b'Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x',
    'CL +2': ECHO + b'Content-Length: +2\r\n\r\n{}',
    'CL list': ECHO + b'Content-Length: 2, 2\r\n\r\n{}',
    'CL hex': ECHO + b'Content-Length: 0x2\r\n\r\n{}',
    'CL negative': ECHO + b'Content-Length: -1\r\n\r\n{}',
    'TE chunked, identity': ECHO + b'Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    'TE identity': ECHO + b'Transfer-Encoding: identity\r\n\r\n{}',
    'bare LF': b'POST /api/v0/echo/read HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}',
    'bare LF in a header': ECHO + b'X-A: 1\nContent-Length: 2\r\n\r\n{}',
    'bare CR': ECHO + b'X-A: 1\rContent-Length: 2\r\n\r\n{}',
    'obs-fold': ECHO + b'X-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\n{}',
    'NUL in a header': ECHO + b'X-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}',
    'space in a header name': ECHO + b'X A: 1\r\nContent-Length: 2\r\n\r\n{}',
    'space before the colon': ECHO + b'Content-Length : 2\r\n\r\n{}',
    'oversized chunk size': ECHO + b'Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n',
    'bad chunk size': ECHO + b'Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
    'LF after chunk size': ECHO + b'Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n',
    'garbage request line': b'POST /api/v0/echo/read FOO\r\n\r\n',
    'space in the target': b'POST /api/v0/echo read HTTP/1.1\r\nHost: x\r\n\r\n',
}


@pytest.mark.parametrize('data', SMUGGLING.values(), ids=SMUGGLING.keys())
def test_ambiguous_framing_is_400_and_closed(proto, data):
    answer = exchange_and_close(proto, data + ECHO + b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 400 ')
    assert answer.count(b'HTTP/1.1') == 1, 'the smuggled second request was answered'
    assert b'Connection: close' in answer and answer.endswith(b'{"error":"400 Bad Request"}')


def test_gzip_chunked_is_not_run(proto):
    """Transfer-Encoding: gzip, chunked: a coding apiphant does not speak."""
    answer = exchange_and_close(proto, ECHO + b'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'
                                + ECHO + b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 501 ') and answer.count(b'HTTP/1.1') == 1
    assert answer.endswith(b'{"error":"501 Not Implemented"}')


def test_http_2_0_is_505(proto):
    answer = exchange_and_close(proto, b'POST /api/v0/echo/read HTTP/2.0\r\nContent-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 505 ')


@pytest.mark.parametrize('version', [b'2.0', b'0.9'])
@pytest.mark.parametrize('connection', [b'Connection: keep-alive', b'Proxy-Connection: keep-alive'])
def test_a_version_kept_alive_by_its_header_is_still_505(proto, version, connection):
    """The front knows HTTP/1.1 without asking llhttp for the version when a
    request is kept alive with no Connection header: a header asking to keep
    another version alive does not pass for 1.1."""
    answer = exchange_and_close(proto, b'POST /api/v0/echo/read HTTP/%s\r\nHost: x\r\n%s\r\nContent-Type: '
                                b'application/json\r\nContent-Length: 2\r\n\r\n{}' % (version, connection))
    assert answer.startswith(b'HTTP/1.1 505 ')


def test_http_1_0_kept_alive_by_proxy_connection_is_1_0(proto):
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        sock.sendall(b'POST /api/v0/echo/read HTTP/1.0\r\nContent-Type: application/json\r\n'
                     b'Proxy-Connection: keep-alive\r\nContent-Length: 2\r\n\r\n{}')
        answer = sock.recv(65536)
    assert b'Connection: keep-alive' in answer and answer.endswith(OK_ECHO)


def test_request_line_too_long_is_414(proto):
    answer = exchange_and_close(proto, b'POST /' + b'a' * 8200 + b' HTTP/1.1\r\nHost: x\r\n\r\n')
    assert answer.startswith(b'HTTP/1.1 414 ') and answer.endswith(b'{"error":"414 URI Too Long"}')


def test_request_line_at_the_limit_is_served(proto):
    answer = raw_exchange(proto, b'POST /' + b'a' * 8000 + b' HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 404 ')


def test_header_too_long_is_431(proto):
    answer = exchange_and_close(proto, ECHO + b'X-Big: ' + b'a' * 8200 + b'\r\nContent-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 431 ')
    assert answer.endswith(b'{"error":"431 Request Header Fields Too Large"}')


def test_too_many_headers_is_431(proto):
    headers = b''.join(b'X-H%d: %d\r\n' % (i, i) for i in range(101))
    assert exchange_and_close(proto, ECHO + headers + b'Content-Length: 2\r\n\r\n{}').startswith(b'HTTP/1.1 431 ')


def test_a_hundred_headers_are_served(proto):
    headers = b''.join(b'X-H%d: %d\r\n' % (i, i) for i in range(97))
    answer = raw_exchange(proto, ECHO + headers + b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 200 ')


def test_a_huge_head_trickling_in_is_431(proto):
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        sock.sendall(ECHO)
        try:
            for i in range(200):
                sock.sendall(b'X-H%d: %s\r\n' % (i % 90, b'a' * 1000))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_all(sock).startswith(b'HTTP/1.1 431 ')


def test_pipelined_requests_are_answered_in_order(proto):
    pipelined = b''.join(ECHO + b'Content-Length: 8\r\nX-Request-Id: p%d\r\n\r\n{"i": %d}' % (i, i) for i in range(5))
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        sock.sendall(pipelined + ECHO + b'Content-Length: 2\r\nConnection: close\r\n\r\n{}')
        answer = read_all(sock)
    assert answer.count(b'HTTP/1.1 200 OK') == 6
    positions = [answer.index(b'X-Request-Id: p%d\r\n' % i) for i in range(5)]
    assert positions == sorted(positions)
    for i in range(5):
        assert answer.index(b'{"i":%d,' % i) > positions[i]
    assert answer.endswith(b'Connection: close\r\n\r\n{"server":"proto"}')


def test_pipelined_request_after_close_is_not_answered(proto):
    answer = exchange_and_close(proto, ECHO + b'Content-Length: 2\r\nConnection: close\r\n\r\n{}'
                                + ECHO + b'Content-Length: 2\r\n\r\n{}')
    assert answer.count(b'HTTP/1.1 200') == 1 and b'Connection: close' in answer


def test_http_1_0_closes_unless_keep_alive(proto):
    answer = exchange_and_close(proto, b'POST /api/v0/echo/read HTTP/1.0\r\nContent-Type: application/json\r\n'
        b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 200') and b'Connection: close' in answer
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(b'POST /api/v0/echo/read HTTP/1.0\r\nContent-Type: application/json\r\n'
                b'Connection: keep-alive\r\nContent-Length: 2\r\n\r\n{}')
            answer = sock.recv(65536)
            assert b'Connection: keep-alive' in answer and answer.endswith(OK_ECHO)


def test_http_1_1_keeps_alive_unless_close(proto):
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(ECHO + b'Content-Length: 2\r\n\r\n{}')
            answer = sock.recv(65536)
            assert answer.endswith(OK_ECHO) and b'Connection:' not in answer


def test_header_names_are_read_in_any_case(proto):
    """The front reads its headers whatever their case, the first time a
    name is met and after (it remembers the names it met)."""
    odd = (b'POST /api/v0/echo/read HTTP/1.1\r\nhOST: x\r\nCONTENT-TYPE: application/json\r\n'
           b'x-request-id: odd-case-1\r\ncontent-LENGTH: 2\r\n\r\n{}')
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(odd)
            answer = sock.recv(65536)
            assert answer.startswith(b'HTTP/1.1 200 ') and b'X-Request-Id: odd-case-1\r\n' in answer
    answer = exchange_and_close(proto, odd.replace(b'hOST: x', b'hOST: x\r\nHoSt: y'))
    assert answer.startswith(b'HTTP/1.1 400 ')


def test_head_and_other_methods_get_json_405(proto):
    answer = exchange_and_close(proto, b'HEAD /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert answer.startswith(b'HTTP/1.1 405 ') and b'Allow: POST' in answer
    assert answer.endswith(b'\r\n\r\n'), 'a HEAD answer has no body'
    assert b'Content-Length: 34' in answer
    for method in (b'GET', b'PUT', b'DELETE', b'OPTIONS', b'PATCH', b'BREW'):
        answer = exchange_and_close(proto, method + b' /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        assert answer.startswith(b'HTTP/1.1 405 ') or (method == b'BREW' and answer.startswith(b'HTTP/1.1 400 '))


def test_absolute_form_target(proto):
    answer = raw_exchange(proto, b'POST http://x/api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 200') and answer.endswith(OK_ECHO)


def test_upgrade_is_not_done(proto):
    answer = exchange_and_close(proto, b'GET /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n'
                                b'Upgrade: websocket\r\n\r\n')
    assert not answer.startswith(b'HTTP/1.1 101')


def test_expect_100_continue_with_an_oversized_body_is_413_without_100(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--max-body-size', '100')
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(ECHO + b'Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n')
        answer = read_all(sock)
    assert answer.startswith(b'HTTP/1.1 413 ') and b'100 Continue' not in answer


def test_chunked_body_in_pieces(proto):
    with socket.create_connection((proto.host, proto.port), timeout=5) as sock:
        sock.sendall(ECHO + b'Transfer-Encoding: chunked\r\n\r\n')
        for piece in (b'4\r\n{"a"', b'\r\n', b'3\r\n: 1\r\n', b'1\r\n}\r\n', b'0\r\n\r\n'):
            sock.sendall(piece)
            time.sleep(0.01)
        assert sock.recv(65536).endswith(b'{"a":1,"server":"proto"}')


@pytest.fixture
def impatient(apiphant_serve):
    """A server with short deadlines."""
    return apiphant_serve(PRODUCTS / 'proto', '--head-timeout', '2', '--body-timeout', '2',
                          '--keepalive-timeout', '3')


def closed_within(sock, seconds):
    """True when the server closes ``sock`` within ``seconds`` (ignoring what it says)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@contextlib.contextmanager
def trickling(sock, byte):
    """Send ``byte`` every 0.3 s on ``sock`` from a thread, until the block ends
    or the server closes: a request that never completes."""
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.3):
            try:
                sock.sendall(byte)
            except OSError:
                return
    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_slowloris_head_is_closed_at_its_deadline_while_others_are_served(impatient):
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as slow:
        slow.sendall(b'POST /api/v0/echo/read HTTP/1.1\r\n')
        with trickling(slow, b'X'):
            for _ in range(10):
                assert requests.post(impatient.url + '/api/v0/echo/read', timeout=5).status_code == 200
            assert closed_within(slow, 6), 'a head trickling in was kept past its 2 s deadline'


def test_slowloris_body_is_closed_when_it_stalls(impatient):
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as slow:
        slow.sendall(ECHO + b'Content-Length: 100\r\n\r\n{"a":')
        assert requests.post(impatient.url + '/api/v0/echo/read', timeout=5).status_code == 200
        assert closed_within(slow, 6)


def test_idle_keep_alive_is_closed_after_its_timeout(impatient):
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as sock:
        sock.sendall(ECHO + b'Content-Length: 2\r\n\r\n{}')
        assert sock.recv(65536).endswith(OK_ECHO)
        assert not closed_within(sock, 1.5), 'closed before the keep-alive timeout'
        assert closed_within(sock, 5)


def test_a_connection_that_sends_nothing_is_closed(impatient):
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as sock:
        assert closed_within(sock, 6)


def test_a_head_begun_behind_an_answered_request_keeps_its_deadline(impatient):
    """A whole request and the start of the next in one read: the first is
    answered, and the second's head still has to arrive within its deadline
    (answering must not leave the connection without one)."""
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as slow:
        slow.sendall(ECHO + b'Content-Length: 2\r\n\r\n{}' + b'POST /api/v0/echo/read HTTP/1.1\r\nHo')
        with trickling(slow, b'o'):
            assert closed_within(slow, 8), 'a head begun behind an answered request was kept past its deadline'


def test_the_fast_answer_is_what_head_makes():
    """The one-format fast path and the head builder make the same bytes."""
    from apiphant.front import _ANSWER, head
    payload, date = b'{"a":1}', b'Sun, 29 Nov 2026 06:00:00 GMT'
    fast = _ANSWER % (b'200 OK', len(payload), b'f00-1', date, payload)
    assert fast == head(b'200 OK', (), b'f00-1', payload, date)
    assert head(b'200 OK', (), b'f00-1', payload, date, keep_alive=False).endswith(
        b'Connection: close\r\n\r\n' + payload)
    assert head(b'200 OK', (('Content-Type', 'text/plain'),), None, b'x', date, head_only=True) == (
        b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nDate: ' + date
        + b'\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n')
    cached = head(b'200 OK', (('Cache-Control', 'max-age=60'),), None, b'{}', date)
    assert b'Cache-Control: max-age=60\r\n' in cached and b'no-store' not in cached


# --- issue 11: the wire fully strict, every request bounded ----------------------------------------

@pytest.mark.parametrize(('what', 'data'), [
    ('chunked on HTTP/1.0', b'POST /api/v0/echo/read HTTP/1.0\r\nContent-Type: application/json\r\n'
                            b'Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nPOST /api/v0/echo/read HTTP/1.0\r\n\r\n'),
    ('no Host', b'POST /api/v0/echo/read HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'),
    ('two Hosts', b'POST /api/v0/echo/read HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Type: application/json\r\n'
                  b'Content-Length: 2\r\n\r\n{}'),
])
def test_framing_http_forbids_is_400_and_closed(proto, what, data):
    answer = exchange_and_close(proto, data)
    assert answer.startswith(b'HTTP/1.1 400 ') and answer.count(b'HTTP/1.') == 1, answer


def test_a_head_over_64_kib_is_431_even_when_it_comes_whole(proto):
    headers = b''.join(b'X-H%d: %s\r\n' % (i, b'v' * 1500) for i in range(90))  # 90 headers, ~136 KiB
    answer = exchange_and_close(proto, ECHO + headers + b'Content-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 431 ')


def test_the_request_line_limit_counts_the_method_and_version(proto):
    target = b'/' + b'a' * (8190 - len(b'POST  HTTP/1.1') - 1)
    assert raw_exchange(proto, b'POST ' + target + b' HTTP/1.1\r\nHost: x\r\n\r\n').startswith(b'HTTP/1.1 404 ')
    answer = exchange_and_close(proto, b'POST ' + target + b'aa HTTP/1.1\r\nHost: x\r\n\r\n')
    assert answer.startswith(b'HTTP/1.1 414 ')


def test_a_content_coding_is_415(proto):
    answer = exchange_and_close(proto, ECHO + b'Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}')
    assert answer.startswith(b'HTTP/1.1 415 ')


def test_every_answer_says_nosniff_and_no_store(proto):
    for path, data in (('/api/v0/echo/read', b'{}'), ('/api/v0/nothing/read', b'{}'), ('/api/v0/raw/update', b''),
                       ('/api/v0/errors/read', b'{"status": 409}')):
        response = requests.post(proto.url + path, data=data, headers={'Content-Type': 'application/json'}, timeout=10)
        assert response.headers['X-Content-Type-Options'] == 'nosniff', path
        assert response.headers['Cache-Control'] == 'no-store', path
    rejected = exchange_and_close(proto, ECHO + b'Content-Length: 999999999\r\n\r\n')
    assert b'X-Content-Type-Options: nosniff\r\n' in rejected and b'Cache-Control: no-store\r\n' in rejected


def test_a_new_connection_that_sends_nothing_is_closed_at_the_head_timeout(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--head-timeout', '1', '--keepalive-timeout', '60')
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        assert closed_within(sock, 10), 'a silent new connection was kept for the keep-alive timeout'


def test_a_body_trickling_in_is_cut_at_its_deadline(impatient):
    """Not a stall: a byte every 0.3 s renews no inactivity timer for ever; the
    body has body_timeout plus a second per 8 KiB it brought."""
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as slow:
        slow.sendall(ECHO + b'Content-Length: 100000\r\n\r\n{"a":"')
        with trickling(slow, b'x'):
            assert closed_within(slow, 12), 'a body trickling in was kept past its deadline'


def test_a_reader_that_takes_nothing_is_cut_and_the_cut_is_logged(impatient):
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        body = b'{"size": 30000000}'
        sock.sendall(b'POST /api/v0/big/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                     b'Content-Length: %d\r\n\r\n%s' % (len(body), body))
        assert impatient.wait_for_output(r'took no byte of its answer for 2\.0s: cut after \d+ of 30000\d+ bytes',
                                         timeout=15)


def test_a_steady_slow_reader_gets_its_whole_answer(impatient):
    """The write deadline is inactivity: a reader taking its answer for longer
    than body_timeout in all, but steadily, is not cut."""
    size = 24 << 20
    with socket.create_connection((impatient.host, impatient.port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        body = b'{"size": %d}' % size
        sock.sendall(b'POST /api/v0/big/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                     b'Connection: close\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
        received = 0
        started = time.monotonic()
        while True:
            chunk = sock.recv(256 << 10)
            if not chunk:
                break
            received += len(chunk)
            time.sleep(0.02)  # about 10 MB/s at most: the answer takes longer than body_timeout (2 s)
        took = time.monotonic() - started
    assert received > size, f'cut after {received} bytes'
    if took < 2:
        pytest.skip(f'the reader was not slow enough here ({took:.1f}s): nothing shown')
