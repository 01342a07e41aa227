"""apiphant's own access tokens: short-lived JWTs signed with HS256 by the
keys the operator provides, never generated into the product's files.

``APIPHANT_AUTH_KEYS`` (or the file of ``--auth-keys-file``) holds
``kid:secret`` pairs, separated by spaces or lines: the first signs, all
verify, so a new key is rolled in first and the old one dropped once the
tokens it signed have expired. A secret is 32 bytes or more (``python -c
"import secrets; print(secrets.token_urlsafe(32))"``).
"""
import re
import secrets
import time

import jwt

from apiphant.auth.identity import Auth, BadToken, register
from apiphant.product import ProductError

__all__ = ['Keys', 'Tokens', 'keys', 'configure', 'mint', 'verify', 'ISSUER']

ISSUER = 'apiphant'
_KID = re.compile(r'[A-Za-z0-9_.-]{1,64}\Z')
_LEEWAY = 5  # seconds of clock skew between the processes of one product


class Keys:
    """A key ring: ``[(kid, secret)]``, the first signs."""

    def __init__(self, pairs):
        self.pairs = tuple(pairs)
        self.by_kid = dict(self.pairs)

    @classmethod
    def parse(cls, text):
        """From ``kid:secret kid2:secret2``; a ValueError says what is wrong
        without echoing a secret."""
        pairs = []
        for number, item in enumerate(str(text).split(), 1):
            kid, colon, secret = item.partition(':')
            if not colon or not _KID.match(kid):
                raise ValueError(f'auth key {number} should be KID:SECRET, KID of letters, digits, _ . -')
            if len(secret.encode()) < 32:
                raise ValueError(f'auth key {kid!r} is shorter than 32 bytes: make one with '
                                 'python -c "import secrets; print(secrets.token_urlsafe(32))"')
            if any(kid == known for known, _ in pairs):
                raise ValueError(f'auth key {kid!r} is given twice')
            pairs.append((kid, secret.encode()))
        return cls(pairs)

    @property
    def signing(self):
        return self.pairs[0] if self.pairs else None

    def __bool__(self):
        return bool(self.pairs)

    def __repr__(self):  # never the secrets
        return f'Keys({[kid for kid, _ in self.pairs]!r})'


_keys = Keys(())


def configure(text=None, path=None):
    """Hand the key ring to this process (the daemon and the scheduler do it
    at start-up from their settings): from ``text``, else the file ``path``."""
    global _keys
    if path:
        with open(path, encoding='utf-8') as file:
            text = file.read()
    _keys = Keys.parse(text or '')
    return _keys


def keys():
    """The process's key ring (empty until ``configure``)."""
    return _keys


def mint(id, roles=(), *, minutes=15, audience, kind='user', extra=None, ring=None):
    """A signed access token for ``id`` with ``roles``, valid ``minutes``,
    for ``audience`` (the product's name)."""
    ring = ring or _keys
    if not ring:
        raise RuntimeError('no auth key to sign with: set APIPHANT_AUTH_KEYS (kid:secret) or --auth-keys-file')
    kid, secret = ring.signing
    now = int(time.time())
    claims = {**(extra or {}), 'iss': ISSUER, 'aud': audience, 'sub': str(id), 'roles': sorted(roles),
              'kind': kind, 'iat': now, 'nbf': now, 'exp': now + int(minutes * 60),
              'jti': secrets.token_urlsafe(12)}
    return jwt.encode(claims, secret, algorithm='HS256', headers={'kid': kid})


def verify(token, *, audience, ring=None):
    """The Auth of one of apiphant's own tokens for ``audience``; None when
    the token is not one (not a JWT, another issuer's kid); BadToken when it
    is one and does not verify."""
    ring = ring or _keys
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    kid = header.get('kid')
    if header.get('alg') != 'HS256' or not isinstance(kid, str) or kid not in ring.by_kid:
        return None  # another source's token, or ours signed with a key no longer kept: no source knows it
    try:
        claims = jwt.decode(token, ring.by_kid[kid], algorithms=['HS256'], audience=audience, issuer=ISSUER,
                            leeway=_LEEWAY, options={'require': ['exp', 'iat', 'sub', 'aud', 'iss']})
    except jwt.ExpiredSignatureError:
        raise BadToken('expired') from None
    except jwt.PyJWTError:
        raise BadToken() from None
    roles = claims.get('roles')
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise BadToken()
    sub = claims['sub']
    return Auth(id=int(sub) if sub.isdigit() and claims.get('kind') == 'user' else sub, roles=frozenset(roles),
                claims=claims, kind=claims.get('kind', 'user'), expires=float(claims['exp']) + _LEEWAY)


class Tokens:
    """The identity source of apiphant's own access tokens: declare
    ``tokens = Tokens()`` in the product's api tree to accept tokens minted
    by ``mint()`` (a login of the product's own, the test fixture), for the
    product's name as audience. ``Accounts`` is one already."""

    def __init__(self):
        self.audience = register(self)

    def apiphant_start(self):
        if not _keys:
            raise ProductError('Tokens verifies access tokens: set APIPHANT_AUTH_KEYS (KID:SECRET, the secret '
                               '32 bytes or more) or --auth-keys-file')

    def apiphant_authenticate(self, token):
        return verify(token, audience=self.audience)

    def __repr__(self):
        return f'Tokens(audience={self.audience!r})'
