"""apiphant.auth.Issuer: tokens of an external OpenID Connect issuer, verified
against the JWKS a local test issuer serves (discovery document and keys,
one realm per issuer, as Keycloak lays them out), through a real server.

The end-to-end cases are named for OWASP API2:2023, Broken Authentication.
"""
import base64
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apiphant.auth.identity import BadToken
from apiphant.auth.oidc import Issuer, claim_roles, parse_jwks
from apiphant.errors import ServiceUnavailable
from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS

AUDIENCE = 'oidc-product'


# -- the test issuer: keys, tokens, and a JWKS server

class Key:
    """A signing key of the test issuer: private part here, public JWK served."""

    def __init__(self, kid, kind='RSA'):
        self.kid = kid
        if kind == 'RSA':
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.algorithm = 'RS256'
            self.jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.algorithm = 'ES256'
            self.jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk.update(kid=kid, use='sig', alg=self.algorithm)

    @property
    def public_pem(self):
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims, **header):
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={'kid': self.kid, **header})


class Realm:
    def __init__(self, keys=()):
        self.keys = list(keys)
        self.down = False
        self.delay = 0
        self.hits = {'discovery': 0, 'certs': 0}


class IssuerServer:
    """Serves ``/realms/NAME/.well-known/openid-configuration`` and
    ``/realms/NAME/certs`` on 127.0.0.1, counting the hits per realm."""

    def __init__(self):
        self.realms = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                _, realms, name, *rest = self.path.split('/')
                realm = owner.realms.get(name) if realms == 'realms' else None
                what = {('.well-known', 'openid-configuration'): 'discovery', ('certs',): 'certs'}.get(tuple(rest))
                if realm is None or what is None:
                    return self.answer(404, {'error': 'not found'})
                with owner.lock:
                    realm.hits[what] += 1
                time.sleep(realm.delay)
                if realm.down:
                    return self.answer(503, {'error': 'down'})
                if what == 'discovery':
                    return self.answer(200, {'issuer': owner.issuer(name), 'jwks_uri': owner.issuer(name) + '/certs'})
                return self.answer(200, {'keys': [key.jwk for key in realm.keys]})

            def answer(self, status, document):
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def issuer(self, name):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}/realms/{name}'

    def realm(self, name, *keys):
        self.realms[name] = Realm(keys)
        return self.issuer(name)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


def claims(iss, sub='alice', roles=('editor',), lifetime=300, **more):
    now = int(time.time())
    return {'iss': iss, 'aud': AUDIENCE, 'sub': sub, 'iat': now, 'exp': now + lifetime,
            'realm_access': {'roles': list(roles)}, 'azp': 'web', **more}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def forged(header, payload, sign=lambda signing_input: b''):
    """A JWT made by hand, signed by ``sign`` (nothing: alg none)."""
    signing_input = f'{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}'
    return f'{signing_input}.{b64(sign(signing_input.encode()))}'


@pytest.fixture(scope='module')
def keys():
    return {'rsa': Key('rsa-1'), 'ec': Key('ec-1', 'EC'), 'other': Key('rsa-other')}


@pytest.fixture(scope='module')
def idp(keys):
    with IssuerServer() as server:
        yield server


# -- unit: the claim path, the settings, the JWKS

def test_roles_from_a_dotted_claim_path():
    token = {'realm_access': {'roles': ['admin', 'editor', 7, None]}, 'resource_access': {'app': {'roles': ['x']}}}
    assert claim_roles(token, ('realm_access', 'roles')) == {'admin', 'editor'}  # strings only
    assert claim_roles(token, ('resource_access', 'app', 'roles')) == {'x'}
    assert claim_roles(token, ('groups',)) == frozenset()  # missing: no roles
    assert claim_roles(token, ('realm_access',)) == frozenset()  # a dict, not a list
    assert claim_roles({'realm_access': 'admin'}, ('realm_access', 'roles')) == frozenset()  # not a dict on the way
    assert claim_roles({'roles': 'admin'}, ('roles',)) == frozenset()  # a string is not a list of roles
    assert claim_roles(token, ()) == frozenset()  # roles=None


def test_settings_of_an_issuer():
    issuer = Issuer('https://sso.example.com/realms/team', audience='myproduct')
    assert issuer.roles == ('realm_access', 'roles')
    assert issuer.algorithms == {'RS256', 'ES256'}
    assert Issuer('https://sso.example.com/', audience='a', roles=('resource_access', 'my.app', 'roles')).roles \
        == ('resource_access', 'my.app', 'roles')
    assert Issuer('https://sso.example.com/', audience=['a', 'b'], roles=None).roles == ()
    for bad in [dict(issuer='http://sso.example.com/realms/team', audience='a'),  # plain http off loopback
                dict(issuer='sso.example.com', audience='a'),
                dict(issuer='https://sso.example.com', audience=''),
                dict(issuer='https://sso.example.com', audience=None),
                dict(issuer='https://sso.example.com', audience='a', algorithms=('RS256', 'HS256')),
                dict(issuer='https://sso.example.com', audience='a', algorithms=('none',)),
                dict(issuer='https://sso.example.com', audience='a', algorithms='RS256'),
                dict(issuer='https://sso.example.com', audience='a', roles='realm_access..roles'),
                dict(issuer='https://sso.example.com', audience='a', jwks_url='ftp://sso.example.com/certs'),
                dict(issuer='https://sso.example.com', audience='a', leeway=-1)]:
        issuer = bad.pop('issuer')
        with pytest.raises(ValueError):
            Issuer(issuer, **bad)


def test_the_algorithm_of_a_key_comes_from_the_key(keys):
    rsa_jwk, ec_jwk = keys['rsa'].jwk, keys['ec'].jwk
    document = {'keys': [
        rsa_jwk, ec_jwk,
        {**{k: v for k, v in rsa_jwk.items() if k != 'alg'}, 'kid': 'no-alg'},  # RSA: RS256
        {**rsa_jwk, 'kid': 'enc', 'use': 'enc'},  # Keycloak's encryption key
        {'kty': 'oct', 'kid': 'hmac', 'k': b64(b'0' * 32), 'alg': 'HS256'},  # never a symmetric key
        {**rsa_jwk, 'kid': 'rsa-as-es', 'alg': 'ES256'},  # alg and key type disagree
        {**ec_jwk, 'kid': 'ec-384', 'alg': 'ES384'},  # alg and curve disagree
        {**rsa_jwk, 'kid': 'rs512', 'alg': 'RS512'},  # not among the algorithms
        {**rsa_jwk, 'kid': 'broken', 'n': 'not base64!'},
        {**rsa_jwk, 'kid': None},
        'garbage',
    ]}
    parsed = parse_jwks(document, {'RS256', 'ES256'})
    assert {kid: algorithm for kid, (algorithm, _) in parsed.items()} == {
        'rsa-1': 'RS256', 'ec-1': 'ES256', 'no-alg': 'RS256'}
    with pytest.raises(ValueError):
        parse_jwks({'keys': 'none'}, {'RS256'})


def test_verifying_in_process(idp, keys):
    """The source alone: None for what is not its own, BadToken for its own bad ones."""
    iss = idp.realm('unit', keys['rsa'], keys['ec'])
    issuer = Issuer(iss, audience=AUDIENCE, leeway=5, prefetch=False)
    auth = issuer.apiphant_authenticate(keys['rsa'].sign(claims(iss, roles=['admin', 'editor'])))
    assert (auth.id, auth.roles, auth.kind) == ('alice', {'admin', 'editor'}, 'oidc')
    assert issuer.apiphant_authenticate(keys['ec'].sign(claims(iss, sub='bob', roles=[]))).id == 'bob'
    assert idp.realms['unit'].hits == {'discovery': 1, 'certs': 1}  # fetched once, kept
    for not_a_jwt in ('not a jwt', '', 'a.b', 'a.b.c', 'a.b.c.d', 'é.é.é', f'{b64(b"[]")}.{b64(b"{}")}.x',
                      f'{b64(b"{}")}.{b64(json.dumps({"iss": [iss]}).encode())}.x'):
        assert issuer.apiphant_authenticate(not_a_jwt) is None
    assert issuer.apiphant_authenticate(keys['rsa'].sign(claims(iss + 'x'))) is None  # another issuer's
    with pytest.raises(BadToken) as expired:
        issuer.apiphant_authenticate(keys['rsa'].sign(claims(iss, lifetime=-60)))
    assert expired.value.description == 'expired'
    without_kid = jwt.encode(claims(iss), keys['rsa'].private, algorithm='RS256')
    with pytest.raises(BadToken):
        issuer.apiphant_authenticate(without_kid)
    missing_roles = claims(iss)
    del missing_roles['realm_access']
    assert issuer.apiphant_authenticate(keys['rsa'].sign(missing_roles)).roles == frozenset()


def test_known_keys_keep_verifying_while_the_issuer_is_down(idp, keys):
    iss = idp.realm('flaky', keys['rsa'])
    issuer = Issuer(iss, audience=AUDIENCE, refetch=0, max_age=0, prefetch=False)  # fetch again on every token
    token = keys['rsa'].sign(claims(iss))
    assert issuer.apiphant_authenticate(token).id == 'alice'
    idp.realms['flaky'].down = True
    assert issuer.apiphant_authenticate(token).id == 'alice'  # the fetch failed, the key kept
    assert idp.realms['flaky'].hits['certs'] == 2
    with pytest.raises(ServiceUnavailable) as unavailable:  # a kid not known: the token may be good
        issuer.apiphant_authenticate(keys['other'].sign(claims(iss)))
    assert unavailable.value.status == 503 and dict(unavailable.value.headers)['Retry-After'] == '1'
    idp.realms['flaky'].down = False
    with pytest.raises(BadToken):  # the issuer answers, and does not know that kid
        issuer.apiphant_authenticate(keys['other'].sign(claims(iss)))


def test_an_issuer_whose_keys_fit_none_of_the_algorithms_says_so(idp, keys, caplog):
    iss = idp.realm('rsa-only', keys['rsa'])
    issuer = Issuer(iss, audience=AUDIENCE, algorithms=('ES256',), prefetch=False)
    with pytest.raises(BadToken):
        issuer.apiphant_authenticate(keys['rsa'].sign(claims(iss)))
    assert 'holds no signing key for ES256' in caplog.text


def test_a_discovery_document_naming_another_issuer_is_refused(idp, keys):
    idp.realm('impostor', keys['rsa'])
    iss = idp.issuer('impostor') + '/'  # the document says it without the slash
    issuer = Issuer(iss, audience=AUDIENCE, prefetch=False)
    with pytest.raises(ServiceUnavailable):
        issuer.apiphant_authenticate(keys['rsa'].sign(claims(iss)))
    assert idp.realms['impostor'].hits == {'discovery': 1, 'certs': 0}


# -- end to end: a real server trusting the test issuer's realms

SENT = []  # every token sent to the servers: none may show in their output


def call(server, token, action='me/read', scheme='Bearer'):
    if token is not None:
        SENT.append(token)
    headers = {} if token is None else {'Authorization': f'{scheme} {token}'}
    return requests.post(f'{server.url}/api/v0/{action}', json={}, headers=headers, timeout=10)


@pytest.fixture(scope='module')
def served(idp, keys):
    """Realms: team (RSA and EC keys), down (its keys cannot be fetched)."""
    issuers = [idp.realm('team', keys['rsa'], keys['ec']), idp.realm('down', keys['rsa'])]
    idp.realms['down'].down = True
    with ServedProduct(PRODUCTS / 'oidc_product', env={'TEST_ISSUERS': ' '.join(issuers)}) as server:
        yield server


@pytest.fixture(scope='module')
def quick(idp, keys):
    """A server whose issuers fetch their keys again 2 s after the last fetch
    at the soonest. Realms: rotate, throttle."""
    issuers = [idp.realm('rotate', Key('rotate-1')), idp.realm('throttle', Key('throttle-1'))]
    with ServedProduct(PRODUCTS / 'oidc_product', env={'TEST_ISSUERS': ' '.join(issuers),
                                                       'TEST_REFETCH': '2'}) as server:
        yield server


def test_api2_valid_rs256_and_es256_tokens(served, idp, keys):
    iss = idp.issuer('team')
    assert served.wait_for_output(r'realms/team: 2 keys \(new: ec-1, rsa-1')  # fetched as it starts serving
    answer = call(served, keys['rsa'].sign(claims(iss, roles=['editor', 'viewer'])))
    assert answer.status_code == 200, answer.text
    assert answer.json() | {'expires': None} == {'id': 'alice', 'roles': ['editor', 'viewer'], 'kind': 'oidc',
                                                'iss': iss, 'expires': None}
    answer = call(served, keys['ec'].sign(claims(iss, sub='bob', roles=['admin'])))
    assert answer.status_code == 200, answer.text
    assert (answer.json()['id'], answer.json()['roles']) == ('bob', ['admin'])
    assert call(served, keys['ec'].sign(claims(iss, sub='bob', roles=['admin'])), 'me/purge').json() == {
        'purged': True}


def refused(answer, error='invalid_token'):
    assert answer.status_code == 401, answer.text
    assert answer.json() == {'error': '401 Unauthorized'}
    assert answer.headers['WWW-Authenticate'].startswith('Bearer ')
    assert f'error="{error}"' in answer.headers['WWW-Authenticate']
    return answer


def test_api2_no_token_and_a_token_nobody_issued(served):
    answer = call(served, None)
    assert answer.status_code == 401 and answer.headers['WWW-Authenticate'].startswith('Bearer ')
    assert call(served, None, 'me/hello').json() == {'hello': 'world', 'authenticated': False}
    refused(call(served, 'not.a.jwt'))
    refused(call(served, 'not.a.jwt', 'me/hello'))  # a bad token is a 401 even where anyone may call


def test_api2_alg_none(served, idp, keys):
    iss = idp.issuer('team')
    for alg in ('none', 'None', 'NONE'):
        refused(call(served, forged({'alg': alg, 'typ': 'JWT', 'kid': 'rsa-1'}, claims(iss, roles=['admin']))))
    refused(call(served, forged({'alg': 'none'}, claims(iss, roles=['admin']))))  # no kid either


def test_api2_hs256_signed_with_the_rsa_public_key(served, idp, keys):
    iss = idp.issuer('team')
    for secret in (keys['rsa'].public_pem, json.dumps(keys['rsa'].jwk).encode(), keys['ec'].public_pem):
        token = forged({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'}, claims(iss, roles=['admin']),
                       lambda data, secret=secret: hmac.new(secret, data, hashlib.sha256).digest())
        refused(call(served, token))
        refused(call(served, token, 'me/purge'))


def test_api2_expired(served, idp, keys):
    answer = refused(call(served, keys['rsa'].sign(claims(idp.issuer('team'), lifetime=-31))))
    assert 'error_description="expired"' in answer.headers['WWW-Authenticate']
    # within the leeway (30 s) an expired token is still good
    assert call(served, keys['rsa'].sign(claims(idp.issuer('team'), lifetime=-10))).status_code == 200


def test_api2_not_yet_valid(served, idp, keys):
    now = int(time.time())
    refused(call(served, keys['rsa'].sign(claims(idp.issuer('team'), nbf=now + 120))))
    assert call(served, keys['rsa'].sign(claims(idp.issuer('team'), nbf=now + 10))).status_code == 200


def test_api2_wrong_issuer(served, idp, keys):
    # signed with the team's key, for an issuer the product does not trust
    refused(call(served, keys['rsa'].sign(claims(idp.issuer('team').replace('team', 'teams')))))
    refused(call(served, keys['rsa'].sign(claims('https://sso.example.com/realms/team'))))
    unverified = claims(idp.issuer('team'))
    del unverified['iss']
    refused(call(served, keys['rsa'].sign(unverified)))


def test_api2_wrong_audience(served, idp, keys):
    iss = idp.issuer('team')
    refused(call(served, keys['rsa'].sign(claims(iss, aud='another-product'))))
    refused(call(served, keys['rsa'].sign(claims(iss, aud=['account', 'another-product']))))
    no_audience = claims(iss)
    del no_audience['aud']
    refused(call(served, keys['rsa'].sign(no_audience)))
    assert call(served, keys['rsa'].sign(claims(iss, aud=['account', AUDIENCE]))).status_code == 200


def test_api2_tampered_payload(served, idp, keys):
    token = keys['rsa'].sign(claims(idp.issuer('team'), roles=['viewer']))
    header, _, signature = token.split('.')
    payload = b64(json.dumps(claims(idp.issuer('team'), roles=['viewer', 'admin'])).encode())
    refused(call(served, f'{header}.{payload}.{signature}', 'me/purge'))
    refused(call(served, token[:-4] + ('AAAA' if not token.endswith('AAAA') else 'BBBB')))


def test_api2_a_token_signed_by_a_key_of_another_issuer_under_a_known_kid(served, idp, keys):
    stranger = Key('rsa-1')  # claims a kid the issuer has
    refused(call(served, stranger.sign(claims(idp.issuer('team'), roles=['admin'])), 'me/purge'))


def test_api2_an_id_token_is_not_an_access_token(served, idp, keys):
    iss = idp.issuer('team')
    refused(call(served, keys['rsa'].sign(claims(iss, typ='ID'))))
    assert call(served, keys['rsa'].sign(claims(iss, typ='Bearer'))).status_code == 200


def test_api5_a_role_gated_action_without_the_role(served, idp, keys):
    answer = call(served, keys['rsa'].sign(claims(idp.issuer('team'), roles=['editor'])), 'me/purge')
    assert answer.status_code == 403 and answer.json() == {'error': '403 Forbidden'}
    no_roles = claims(idp.issuer('team'))
    no_roles['realm_access'] = 'admin'  # not a list: no roles
    assert call(served, keys['rsa'].sign(no_roles), 'me/purge').status_code == 403


def test_an_issuer_that_is_down_answers_503_not_401(served, idp, keys):
    iss = idp.issuer('down')
    token = keys['rsa'].sign(claims(iss))
    answer = call(served, token)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers['Retry-After']) >= 1
    assert answer.json() == {'error': 'the identity issuer cannot be reached'}
    hits = dict(idp.realms['down'].hits)
    assert call(served, token).status_code == 503
    assert idp.realms['down'].hits == hits  # not asked again so soon
    assert served.wait_for_output('cannot fetch its keys')


def test_api2_unknown_kid_fetches_the_keys_once_then_401(quick, idp):
    realm = idp.realms['throttle']
    iss = idp.issuer('throttle')
    assert call(quick, realm.keys[0].sign(claims(iss))).status_code == 200
    assert realm.hits == {'discovery': 1, 'certs': 1}
    time.sleep(2.1)  # the refetch interval of the quick server
    realm.delay = 0.3  # the fetch is slow: the concurrent requests wait for the same one
    strangers = [Key(secrets.token_hex(4)) for _ in range(3)]
    tokens = [strangers[n % 3].sign(claims(iss, jti=str(n))) for n in range(12)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda token: call(quick, token), tokens))
    for answer in answers:
        refused(answer)
    assert realm.hits == {'discovery': 1, 'certs': 2}  # one refetch for twelve tokens of unknown kids
    realm.delay = 0
    for token in tokens[:4]:
        refused(call(quick, token))
    assert realm.hits['certs'] == 2


def test_api2_a_key_rotated_in_at_the_issuer_is_accepted_after_a_refetch(quick, idp):
    realm = idp.realms['rotate']
    iss = idp.issuer('rotate')
    old = realm.keys[0]
    assert call(quick, old.sign(claims(iss))).status_code == 200
    certs = realm.hits['certs']
    new = Key('rotate-2', 'EC')
    realm.keys.append(new)
    time.sleep(2.1)  # the refetch interval of the quick server
    answer = call(quick, new.sign(claims(iss, sub='carol', roles=['admin'])), 'me/purge')
    assert answer.status_code == 200, answer.text
    assert realm.hits['certs'] == certs + 1
    realm.keys.remove(old)  # the old key retired: its tokens verify until the keys are fetched again
    assert call(quick, old.sign(claims(iss, sub='dave'))).status_code == 200


def test_api2_no_token_in_the_output(served, quick):
    """Last: every token sent to the two servers so far, none in their output."""
    assert len(SENT) > 40
    for server in (served, quick):
        assert server.wait_for_output('401')  # the access log speaks of the refused requests
        output = server.output
        leaked = [token for token in SENT if token in output or len(token) > 40 and token[-40:] in output]
        assert not leaked, f'{len(leaked)} tokens in the output of {server.url}'
