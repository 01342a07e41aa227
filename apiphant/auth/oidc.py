"""Tokens of an external OpenID Connect issuer (Keycloak, Auth0, Entra ID,
Google ...): bearer JWTs signed with RS256 or ES256, verified against the
public keys the issuer publishes (its JWKS).

::

    # myproduct/api/v0/__init__.py, or any module of the api tree
    from apiphant.auth import Issuer
    sso = Issuer('https://sso.example.com/realms/team', audience='myproduct',
                 roles='realm_access.roles')

A token is this issuer's when its (not yet verified) ``iss`` is exactly the
issuer's URL; any other token is left to the product's other identity
sources. One of the issuer's tokens is then verified: signature with the key
its ``kid`` names, ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` with
``leeway`` seconds of clock skew; a ``typ`` claim, when there is one, must
be ``Bearer`` (Keycloak's ID tokens say ``ID``: they are not access tokens).

The keys: discovered from ``{issuer}/.well-known/openid-configuration``
(``jwks_uri``) unless ``jwks_url`` is given, fetched on the first token
(``requests``, cooperative under gevent, 2 s timeouts) as the daemon starts
serving (or by the first token that needs them), kept, fetched again
when a token names a ``kid`` not known (a key rotated in at the issuer) or
when they are older than ``max_age`` seconds. However many tokens name
unknown kids, the issuer is asked at most once per ``refetch`` seconds, and
concurrent requests wait for one fetch instead of making their own.

When the keys cannot be fetched (the issuer is down, answers garbage) and
the token's key is not known, the token may well be good: the answer is
``503`` with ``Retry-After``, not ``401``, so a client does not throw away
a good token. A kid still unknown after a successful fetch is a ``401``.
Keys already known keep verifying while the issuer is down.

The algorithm of a key comes from the key (RSA: RS256, or the JWK's
``alg``; EC: from its curve, P-256 is ES256), never from the token's header:
a token whose header says ``none`` or ``HS256`` (an HMAC "signed" with the
public key) is a 401. Symmetric keys (``kty: oct``) in a JWKS are ignored.
"""
import base64
import ipaddress
import logging
import threading
import time
from urllib.parse import urlsplit

import jwt
import orjson

from apiphant.auth import identity
from apiphant.auth.identity import Auth, BadToken

__all__ = ['Issuer', 'claim_roles']

log = logging.getLogger('apiphant')

# Asymmetric algorithms only: what a key type may verify.
_ALGORITHMS = {'RS256': 'RSA', 'RS384': 'RSA', 'RS512': 'RSA', 'PS256': 'RSA', 'PS384': 'RSA', 'PS512': 'RSA',
               'ES256': 'EC', 'ES384': 'EC', 'ES512': 'EC'}
_CURVES = {'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512'}
_MAX_DOCUMENT = 1 << 20  # bytes of a discovery document or a JWKS


def claim_roles(claims, path):
    """The role names found at ``path`` (a tuple of keys) in ``claims``: a
    frozenset of the strings of the list there; empty when the claim is
    missing or not a list."""
    value = claims
    for key in path:
        if not isinstance(value, dict):
            return frozenset()
        value = value.get(key)
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item for item in value if isinstance(item, str))


class Issuer:
    """An external OpenID Connect issuer whose bearer tokens identify callers.

    ``issuer``: the URL exactly as the tokens' ``iss`` says it (Keycloak:
    ``https://HOST/realms/REALM``); ``audience``: what their ``aud`` must
    hold (a name, or several); ``roles``: where the role names are, a dotted
    path (``'realm_access.roles'``, Keycloak's realm roles) or a tuple of
    keys (``('resource_access', 'myproduct', 'roles')``), None for none;
    ``jwks_url`` skips the discovery; ``leeway`` seconds of clock skew;
    ``algorithms`` the ones accepted (asymmetric only); ``refetch`` the
    fewest seconds between two fetches of the keys; ``max_age`` how long
    fetched keys are used before being fetched again; ``timeout`` of each
    fetch, in seconds; ``prefetch=False`` leaves the first fetch to the
    first token instead of the daemon's start.

    Declared at module level in the product's api tree, it is one of the
    product's identity sources (access control is on). Plain ``http://`` is
    accepted only for a loopback issuer (tests, a local Keycloak).
    """

    def __init__(self, issuer, *, audience, roles='realm_access.roles', jwks_url=None, leeway=30,
                 algorithms=('RS256', 'ES256'), refetch=30, max_age=3600, timeout=2, prefetch=True):
        self.issuer = _url(issuer, 'Issuer(issuer)')
        if isinstance(audience, str):
            audience = (audience,)
        audience = tuple(audience or ())
        if not audience or not all(isinstance(a, str) and a for a in audience):
            raise ValueError(f'Issuer({issuer!r}): audience should name this product as the issuer\'s tokens '
                             f'say it in aud (Keycloak: a client id or an audience mapper), not {audience!r}')
        self.audience = audience
        if isinstance(roles, str):
            roles = tuple(roles.split('.'))
        self.roles = tuple(roles or ())
        if not all(isinstance(key, str) and key for key in self.roles):
            raise ValueError(f'Issuer({issuer!r}): roles should be a dotted claim path like '
                             f'\'realm_access.roles\' or a tuple of keys, not {roles!r}')
        unknown = [name for name in algorithms if name not in _ALGORITHMS]
        if isinstance(algorithms, str) or not algorithms or unknown:
            raise ValueError(f'Issuer({issuer!r}): algorithms should be some of {sorted(_ALGORITHMS)} '
                             f'(never none nor HS256), not {algorithms!r}')
        self.algorithms = frozenset(algorithms)
        self.jwks_url = _url(jwks_url, 'Issuer(jwks_url)') if jwks_url is not None else None
        for name, value in (('leeway', leeway), ('refetch', refetch), ('max_age', max_age), ('timeout', timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f'Issuer({issuer!r}): {name} should be a number of seconds, not {value!r}')
        self.leeway, self.refetch, self.max_age, self.timeout = leeway, refetch, max_age, timeout
        self.keys = {}  # kid: (algorithm, public key)
        self.fetched = None  # time.monotonic() of the last successful fetch
        self.tried = None  # ... of the last attempt, successful or not
        self.failed = False  # whether the last attempt failed
        self.fetches = 0  # attempts made, for tests and metrics
        self._lock = threading.Lock()  # gevent's under monkey patching: one fetch at a time, the others wait
        self._session = None
        self.product = identity.register(self)
        from gevent import monkey
        if prefetch and monkey.is_module_patched('socket'):  # in the daemon: the keys are fetched as it starts serving
            import gevent
            gevent.spawn(self._prefetch)

    def __repr__(self):
        return f'Issuer({self.issuer!r}, audience={list(self.audience)!r})'

    # -- verifying

    def apiphant_authenticate(self, token):
        """The Auth of one of this issuer's tokens; None when the token is
        not one; BadToken when it is one that does not verify;
        ServiceUnavailable when its key cannot be known for now."""
        header, unverified = peek(token)
        if unverified.get('iss') != self.issuer:
            return None
        kid = header.get('kid')
        if not isinstance(kid, str) or not kid:
            raise BadToken()
        algorithm, key = self.key(kid)
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], audience=list(self.audience), issuer=self.issuer,
                                leeway=self.leeway, options={'require': ['exp', 'iss', 'aud', 'sub']})
        except jwt.ExpiredSignatureError:
            raise BadToken('expired') from None
        except jwt.PyJWTError:
            raise BadToken() from None
        if not isinstance(claims['sub'], str) or not claims['sub']:
            raise BadToken()
        if claims.get('typ', 'Bearer') != 'Bearer':
            raise BadToken()  # Keycloak's ID tokens (typ ID) and the like: not access tokens
        return Auth(id=claims['sub'], roles=claim_roles(claims, self.roles), claims=claims, kind='oidc',
                    expires=float(claims['exp']) + self.leeway)

    def key(self, kid):
        """``(algorithm, public key)`` of ``kid``, fetching the keys when it is
        not known (or they are old) and the last attempt is ``refetch``
        seconds ago or more."""
        found = self.keys.get(kid)
        if found is not None and not self._old():
            return found
        with self._lock:  # whoever waited here finds the keys the one before it fetched
            found = self.keys.get(kid)
            if found is None or self._old():
                if self.tried is None or time.monotonic() - self.tried >= self.refetch:
                    self._fetch()
                found = self.keys.get(kid)
        if found is not None:
            return found  # known, possibly from keys kept while the issuer is down
        if self.failed:
            from apiphant.errors import ServiceUnavailable
            wait = 1 if self.tried is None else max(1, self.refetch - (time.monotonic() - self.tried))
            raise ServiceUnavailable('the identity issuer cannot be reached', retry_after=wait)
        raise BadToken()

    def _old(self):
        return self.fetched is not None and time.monotonic() - self.fetched >= self.max_age

    # -- fetching

    def _prefetch(self):
        """Fetch the keys before the first token needs them; a failure is
        logged and does not hold back the first token's own attempt."""
        with self._lock:
            if self.tried is None:
                self._fetch()
                if self.failed:
                    self.tried = None

    def _fetch(self):
        """Fetch the keys (and the discovery document, the first time);
        keep the known keys when that fails, and log why (never a token)."""
        self.tried = time.monotonic()
        self.fetches += 1
        try:
            if self.jwks_url is None:
                document = self._get(self.issuer.rstrip('/') + '/.well-known/openid-configuration')
                if document.get('issuer') != self.issuer:
                    raise ValueError(f'its discovery document names the issuer {document.get("issuer")!r}')
                self.jwks_url = _url(document.get('jwks_uri'), 'jwks_uri')
            keys = parse_jwks(self._get(self.jwks_url), self.algorithms)
        except Exception as error:  # noqa: BLE001 (whatever the issuer did, the answer is a 503 and a log line)
            self.failed = True
            log.warning('OpenID Connect issuer %s: cannot fetch its keys (%s): %s', self.issuer,
                        type(error).__name__, _short(error))
            return
        self.failed = False
        self.fetched = self.tried
        added = keys.keys() - self.keys.keys()
        dropped = self.keys.keys() - keys.keys()
        self.keys = keys
        if not keys:
            log.warning('OpenID Connect issuer %s: its JWKS holds no signing key for %s: no token of it verifies',
                        self.issuer, ', '.join(sorted(self.algorithms)))
        elif added or dropped:
            log.info('OpenID Connect issuer %s: %d keys (new: %s; dropped: %s)', self.issuer, len(keys),
                     ', '.join(sorted(added)) or '-', ', '.join(sorted(dropped)) or '-')

    def _get(self, url):
        import requests  # here: importing requests costs a product without an issuer nothing
        if self._session is None:
            self._session = requests.Session()
        with self._session.get(url, timeout=self.timeout, stream=True,
                               headers={'Accept': 'application/json'}) as response:
            response.raise_for_status()
            body = response.raw.read(_MAX_DOCUMENT + 1, decode_content=True)
        if len(body) > _MAX_DOCUMENT:
            raise ValueError(f'{url} answers more than {_MAX_DOCUMENT} bytes')
        document = orjson.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f'{url} does not answer a JSON object')
        return document


def peek(token):
    """``(header, payload)`` of a compact JWT, not verified, to tell whose
    it is (``({}, {})`` when it is not a JWT): a few microseconds where
    PyJWT's parser takes a hundred or more, for each source a token is not of.
    Nothing read here is trusted: ``jwt.decode`` checks it all again."""
    parts = token.split('.')
    if len(parts) != 3:
        return _NOT_A_JWT
    try:
        header, payload = (orjson.loads(base64.urlsafe_b64decode(part + '=' * (-len(part) % 4))) for part in parts[:2])
    except (ValueError, TypeError):  # binascii.Error and orjson.JSONDecodeError are ValueErrors
        return _NOT_A_JWT
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return _NOT_A_JWT
    return header, payload


_NOT_A_JWT = ({}, {})


def parse_jwks(document, algorithms):
    """``{kid: (algorithm, public key)}`` of the signing keys of a JWKS
    document that verify one of ``algorithms``; keys of another use or type,
    without a kid, or that do not parse are left out."""
    keys = {}
    entries = document.get('keys')
    if not isinstance(entries, list):
        raise ValueError('the JWKS has no "keys" list')
    for entry in entries:
        if not isinstance(entry, dict) or entry.get('use', 'sig') != 'sig':
            continue
        kid, kty = entry.get('kid'), entry.get('kty')
        if not isinstance(kid, str) or not kid or kty not in ('RSA', 'EC'):
            continue  # never a symmetric (oct) key: a public JWKS holding one would let anyone sign
        algorithm = entry.get('alg')
        if algorithm is None:
            algorithm = 'RS256' if kty == 'RSA' else _CURVES.get(entry.get('crv'))
        if algorithm not in algorithms or _ALGORITHMS[algorithm] != kty \
                or kty == 'EC' and _CURVES.get(entry.get('crv')) != algorithm:
            continue
        try:
            keys[kid] = (algorithm, jwt.PyJWK(entry, algorithm).key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    return keys


def _url(value, what):
    """``value`` if it is an https URL (http only to a loopback host)."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not parts.hostname or parts.scheme not in ('https', 'http') \
            or parts.scheme == 'http' and not _loopback(parts.hostname):
        raise ValueError(f'{what} should be an https:// URL (http:// only on a loopback host), not {value!r}')
    return value


def _loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _short(error):
    text = str(error)
    return text if len(text) <= 300 else text[:300] + '...'
