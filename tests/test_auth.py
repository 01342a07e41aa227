"""Access per action through a real server: the gate, secure by default,
401 and 403, ``context.auth``; apiphant's own tokens (OWASP API2:2023, Broken
Authentication, for these tokens) and roles (API5:2023, Broken Function Level
Authorization)."""
import base64
import json
import subprocess
import sys
import time

import jwt
import pytest
import requests

from apiphant.auth import tokens
from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS, raw_exchange

KEYS = 'k2:' + 'b' * 40 + ' k1:' + 'a' * 40
RING = tokens.Keys.parse(KEYS)
OLD_RING = tokens.Keys.parse('k1:' + 'a' * 40)
OTHER_RING = tokens.Keys.parse('k2:' + 'c' * 40)


@pytest.fixture(scope='module')
def guarded():
    server = ServedProduct(PRODUCTS / 'guarded', env={'APIPHANT_AUTH_KEYS': KEYS}).start()
    yield server
    server.stop()


def call(server, path, token=None, body=None, headers=None):
    headers = {'Content-Type': 'application/json', **(headers or {})}
    if token is not None:
        headers['Authorization'] = f'Bearer {token}'
    return requests.post(f'http://{server.host}:{server.port}/api/v0/{path}', json=body or {}, headers=headers,
                         timeout=10)


def mint(id=7, roles=(), ring=RING, audience='guarded', **options):
    return tokens.mint(id, roles, ring=ring, audience=audience, **options)


def test_secure_by_default_an_action_without_access_needs_a_caller(guarded):
    answer = call(guarded, 'me/read')
    assert answer.status_code == 401
    assert answer.json() == {'error': '401 Unauthorized'}
    assert answer.headers['WWW-Authenticate'] == 'Bearer realm="api"'
    assert call(guarded, 'me/hello').status_code == 401


def test_a_valid_token_reaches_the_action_with_context_auth(guarded):
    answer = call(guarded, 'me/read', mint(7, ['editor']))
    assert answer.status_code == 200
    assert answer.json() == {'id': 7, 'roles': ['editor'], 'kind': 'user'}
    again = call(guarded, 'me/read', mint(8))  # another caller, another answer: nothing is mixed up
    assert again.json() == {'id': 8, 'roles': [], 'kind': 'user'}


def test_raw_actions_are_guarded_too(guarded):
    url = f'http://{guarded.host}:{guarded.port}/api/v0/me/upload'
    assert requests.post(url, data=b'x', timeout=10).status_code == 401
    answer = requests.post(url, data=b'x', headers={'Authorization': f'Bearer {mint(5)}'}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {'id': 5}


def test_access_declared_by_a_package_holds_below_it(guarded):
    answer = call(guarded, 'public/status/read')
    assert answer.status_code == 200 and answer.json() == {'ok': True, 'caller': None}
    assert call(guarded, 'public/status/read', mint(3)).json() == {'ok': True, 'caller': 3}
    assert call(guarded, 'public/status/private').status_code == 401  # the action's own access wins
    assert call(guarded, 'public/status/private', mint(3)).json() == {'caller': 3}


def test_api5_role_gated_actions_are_403_for_other_callers(guarded):
    assert call(guarded, 'admin/purge').status_code == 401
    answer = call(guarded, 'admin/purge', mint(7, ['editor']))
    assert answer.status_code == 403 and answer.json() == {'error': '403 Forbidden'}
    assert call(guarded, 'admin/purge', mint(7, ['admin'])).json() == {'purged': True}
    assert call(guarded, 'admin/publish', mint(7, ['editor'])).json() == {'published': True}
    assert call(guarded, 'admin/publish', mint(7, ['viewer'])).status_code == 403


def _refused(answer, description=None):
    assert answer.status_code == 401, answer.text
    assert answer.json() == {'error': '401 Unauthorized'}
    challenge = answer.headers['WWW-Authenticate']
    assert challenge.startswith('Bearer realm="api", error="invalid_token"'), challenge
    if description:
        assert f'error_description="{description}"' in challenge


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b'=').decode()


def test_api2_a_bad_token_is_401_even_where_anyone_may_call(guarded):
    _refused(call(guarded, 'public/status/read', 'not-a-token'))
    _refused(call(guarded, 'me/read', 'not-a-token'))


def test_api2_expired_token(guarded):
    _refused(call(guarded, 'me/read', mint(minutes=-1)), 'expired')


def test_api2_alg_none(guarded):
    claims = jwt.decode(mint(), options={'verify_signature': False})
    claims['roles'] = ['admin']
    unsigned = f'{_b64({"alg": "none", "typ": "JWT", "kid": "k2"})}.{_b64(claims)}.'
    _refused(call(guarded, 'admin/purge', unsigned))


def test_api2_tampered_payload(guarded):
    header, payload, signature = mint(7, ['viewer']).split('.')
    claims = json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))
    claims['roles'] = ['admin']
    _refused(call(guarded, 'admin/purge', f'{header}.{_b64(claims)}.{signature}'))


def test_api2_signed_with_another_secret_under_a_known_kid(guarded):
    _refused(call(guarded, 'me/read', mint(ring=OTHER_RING)))


def test_api2_unknown_kid(guarded):
    _refused(call(guarded, 'me/read', mint(ring=tokens.Keys.parse('k9:' + 'a' * 40))))


def test_api2_wrong_audience(guarded):
    _refused(call(guarded, 'me/read', mint(audience='another-product')))


def test_api2_token_of_another_issuer(guarded):
    now = int(time.time())
    token = jwt.encode({'iss': 'https://evil.example', 'aud': 'guarded', 'sub': '7', 'roles': ['admin'],
                        'iat': now, 'exp': now + 60}, 'a' * 40, algorithm='HS256', headers={'kid': 'k1'})
    _refused(call(guarded, 'admin/purge', token))


def test_a_key_rolled_out_still_verifies_while_kept(guarded):
    assert call(guarded, 'me/read', mint(4, ring=OLD_RING)).json()['id'] == 4  # k1: the second key, verify only


def test_not_bearer_is_invalid_request(guarded):
    answer = call(guarded, 'me/read', headers={'Authorization': 'Basic dXNlcjpwYXNz'})
    assert answer.status_code == 401
    assert 'error="invalid_request"' in answer.headers['WWW-Authenticate']


def test_two_authorization_headers_are_refused(guarded):
    token = mint()
    answer = raw_exchange(guarded, (
        f'POST /api/v0/me/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n'
        f'Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n\r\n{{}}').encode())
    assert answer.startswith(b'HTTP/1.1 400 ')


def test_the_server_serves_on_after_bad_tokens_and_logs_no_token(guarded):
    secret_token = mint(7, ['admin'])
    call(guarded, 'me/read', secret_token)
    call(guarded, 'me/read', secret_token[:-3] + 'abc')
    assert call(guarded, 'public/status/read').status_code == 200
    output = guarded.output
    for part in secret_token.split('.'):
        assert part not in output
    assert 'a' * 40 not in output and 'b' * 40 not in output


def test_routes_list_each_access():
    listing = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCTS / 'guarded'), '--routes'],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    lines = {line.split()[0]: line + ' ' for line in listing.splitlines()[1:]}
    assert ' role admin ' in lines['/api/v0/admin/purge']
    assert ' role admin or editor ' in lines['/api/v0/admin/publish']
    assert ' authenticated ' in lines['/api/v0/me/read']
    assert ' anyone ' in lines['/api/v0/public/status/read']


def test_bad_auth_keys_stop_start_up_without_echoing_them():
    secret = 'x' * 10
    result = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCTS / 'guarded'), '127.0.0.1:0'],
                            capture_output=True, text=True, timeout=60, env={**_env(), 'APIPHANT_AUTH_KEYS': f'k1:{secret}'})
    assert result.returncode != 0
    assert 'shorter than 32 bytes' in result.stderr and secret not in result.stderr + result.stdout


def test_a_product_without_identity_source_is_open_and_says_so(proto):
    assert 'declares no identity source' in proto.output
    answer = requests.post(f'http://{proto.host}:{proto.port}/api/v0/echo/read', json={},
                           headers={'Authorization': 'Bearer whatever'}, timeout=10)
    assert answer.status_code == 200  # 0.2's behaviour: no gate at all


def _env():
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith('APIPHANT_')}


def test_the_api_description_says_who_may_call_each_operation():
    from openapi_spec_validator import validate
    printed = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCTS / 'guarded'), '--openapi'],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    document = json.loads(printed)
    validate(document)
    assert document['components']['securitySchemes']['bearer']['scheme'] == 'bearer'
    paths = document['paths']
    purge = paths['/api/v0/admin/purge']['post']
    assert purge['security'] == [{'bearer': []}] and purge['x-apiphant-access'] == 'role admin'
    assert {'401', '403'} <= set(purge['responses'])
    me = paths['/api/v0/me/read']['post']
    assert me['security'] == [{'bearer': []}] and '403' not in me['responses'] and '401' in me['responses']
    public = paths['/api/v0/public/status/read']['post']
    assert public['security'] == [{}, {'bearer': []}]  # a token is optional
    assert 'security' not in paths['/health']['get']


def test_tokens_without_keys_stop_start_up_with_one_line():
    result = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCTS / 'guarded'), '127.0.0.1:0'],
                            capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode != 0
    assert 'set APIPHANT_AUTH_KEYS' in result.stderr and 'Traceback' not in result.stderr
