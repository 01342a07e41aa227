"""Who is asking and how much: the real client behind trusted proxies (and
spoofing from anywhere else ignored), per-client rate limits answered 429
with Retry-After, and the in-flight cap shedding with fast 503s.

OWASP API4:2023 (unrestricted resource consumption) is what the rate limits
and the in-flight cap answer; the tests named so below check them.
"""
import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apiphant.limits import Proxies, Rate, RateLimits, networks
from apiphant.routing import Route
from conftest import PRODUCTS

ECHO = '/api/v0/echo/read'
CTX = '/api/v0/ctx/read'


def post_from(server, source, path, body=None, headers=None):
    """POST from the loopback address ``source`` (127.0.0.2 is another client)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10, source_address=(source, 0))
    try:
        connection.request('POST', path, body=json.dumps(body or {}),
                           headers={'Content-Type': 'application/json', **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


# --- trusted proxies ----------------------------------------------------------------------------

PROXIES = Proxies(networks('127.0.0.1, 10.0.0.0/8'))


@pytest.mark.parametrize(('forwarded_for', 'real_ip', 'client'), [
    (b'203.0.113.9', None, '203.0.113.9'),
    (b'1.2.3.4, 203.0.113.9', None, '203.0.113.9'),  # what the client wrote itself is not believed
    (b'203.0.113.9, 10.1.2.3', None, '203.0.113.9'),  # through two trusted proxies
    (b'203.0.113.9,10.1.2.3, 127.0.0.1', None, '203.0.113.9'),
    (b'10.1.2.3', None, '10.1.2.3'),  # proxies all the way
    (b'not an address', None, '127.0.0.1'),
    (b'1.2.3.4, garbage, 203.0.113.9', None, '203.0.113.9'),
    (None, b'198.51.100.7', '198.51.100.7'),
    (None, b'junk', '127.0.0.1'),
    (b'2001:db8::1', None, '2001:db8::1'),
    (b'[2001:db8::2]', None, '2001:db8::2'),
    (None, None, '127.0.0.1'),
])
def test_the_client_behind_trusted_proxies(forwarded_for, real_ip, client):
    assert PROXIES.client('127.0.0.1', forwarded_for, real_ip) == client


def test_only_configured_peers_are_trusted():
    assert PROXIES.trusts('127.0.0.1') and PROXIES.trusts('10.200.0.1') and PROXIES.trusts('::ffff:127.0.0.1')
    assert not PROXIES.trusts('127.0.0.2') and not PROXIES.trusts('192.168.1.1') and not PROXIES.trusts('::1')
    assert not Proxies(()) and not Proxies(()).trusts('127.0.0.1')


def test_a_bad_network_is_refused():
    with pytest.raises(ValueError, match='not-a-network'):
        networks('127.0.0.1, not-a-network')


def test_forwarded_for_from_a_trusted_proxy_names_the_client(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--trusted-proxies', '127.0.0.1')
    response = requests.post(server.url + CTX, headers={'X-Forwarded-For': '1.2.3.4, 203.0.113.9',
                                                        'X-Request-Id': 'proxied-1'}, timeout=10)
    assert response.json()['client'] == '203.0.113.9'
    assert requests.post(server.url + CTX, headers={'X-Real-IP': '198.51.100.7'}, timeout=10).json()['client'] \
        == '198.51.100.7'
    assert requests.post(server.url + CTX, timeout=10).json()['client'] == '127.0.0.1'
    assert server.wait_for_output(r'203\.0\.113\.9 POST /api/v0/ctx/read 200 [\d.]+ms proxied-1')  # the access log


@pytest.mark.parametrize('trusted', [None, '10.0.0.0/8', '127.0.0.2'])
def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(apiphant_serve, trusted):
    server = apiphant_serve(PRODUCTS / 'proto', *(['--trusted-proxies', trusted] if trusted else []))
    for headers in ({'X-Forwarded-For': '203.0.113.9'}, {'X-Real-IP': '203.0.113.9'},
                    {'x-forwarded-for': '203.0.113.9', 'X-REAL-IP': '203.0.113.10'}):
        assert requests.post(server.url + CTX, headers=headers, timeout=10).json()['client'] == '127.0.0.1'


# --- rate limits ---------------------------------------------------------------------------------

def test_rates():
    assert Rate('10/s').per_second == 10 and Rate('10/s').burst == 10
    assert Rate('120/m burst 5').per_second == 2 and Rate('120/m burst 5').burst == 5
    assert Rate('3600 / hour').per_second == 1
    for bad in ('10', '0/s', '10/d', 'ten/s', '10/s burst', '10/s burst 0', '-1/s'):
        with pytest.raises(ValueError):
            Rate(bad)


def test_a_token_bucket_refills_at_its_rate():
    now = [0.0]
    limits = RateLimits(Rate('2/s'), clock=lambda: now[0])
    route = Route(path='/api/v0/x/read', version='v0', target='x', action='read', function=None, module='m', doc='')
    limits.check(route, 'a')
    limits.check(route, 'a')
    with pytest.raises(Exception) as caught:
        limits.check(route, 'a')
    assert caught.value.status == 429 and caught.value.headers == (('Retry-After', '1'),)
    limits.check(route, 'b')  # another client has its own bucket
    now[0] = 0.5  # one token back
    limits.check(route, 'a')
    with pytest.raises(Exception):
        limits.check(route, 'a')


def test_api4_a_burst_over_the_rate_limit_gets_429_while_other_clients_are_served(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto', '--rate-limit', '5/m')
    answers = [post_from(server, '127.0.0.1', ECHO) for _ in range(8)]
    assert [status for status, _, _ in answers] == [200] * 5 + [429] * 3
    status, headers, body = answers[-1]
    assert body == {'error': '429 Too Many Requests'}
    assert 1 <= int(headers['Retry-After']) <= 12  # a token comes back every 12 s
    assert post_from(server, '127.0.0.2', ECHO)[0] == 200  # another client
    assert requests.get(server.url + '/health', timeout=10).status_code == 200  # never limited


def test_an_action_with_a_rate_of_its_own(apiphant_serve):
    server = apiphant_serve(PRODUCTS / 'proto')
    statuses = [post_from(server, '127.0.0.1', '/api/v0/held/update')[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert post_from(server, '127.0.0.1', ECHO)[0] == 200  # the product has no rate: echo is not limited


# --- shedding ------------------------------------------------------------------------------------

def test_api4_past_the_in_flight_cap_requests_are_shed_with_a_fast_503(apiphant_serve, tmp_path):
    """Three requests held in flight fill a cap of 3: every request after
    them is answered 503 with Retry-After at once (they come back while the
    three are still held: the test would hang otherwise), /health still
    answers, and once the three end, the process serves again."""
    server = apiphant_serve(PRODUCTS / 'proto', '--max-in-flight', '3')
    release = tmp_path / 'release'
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(requests.post, server.url + '/api/v0/held/read', json={'until': str(release)}, timeout=30)
                for _ in range(3)]
        shed = []
        for _ in range(50):
            response = requests.post(server.url + ECHO, timeout=10)
            if response.status_code == 503:
                shed.append(response)
            if len(shed) == 5:
                break
        assert len(shed) == 5 and not any(future.done() for future in held)
        assert all(r.json() == {'error': '503 Service Unavailable'} and r.headers['Retry-After'] == '1' for r in shed)
        assert requests.get(server.url + '/health', timeout=10).status_code == 200
        release.touch()
        assert [future.result().status_code for future in held] == [200, 200, 200]
    assert requests.post(server.url + ECHO, timeout=10).status_code == 200
