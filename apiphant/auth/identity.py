"""Who is calling: the ``Auth`` record every identity source gives, and the
registry of a product's identity sources.

An identity source is an object a product declares in its module tree
(``Accounts()``, ``ApiKeys()``, ``Issuer(...)``) with one method,
``apiphant_authenticate(token) -> Auth | None``: None when the bearer token
is not of its kind (another source may know it), ``BadToken`` when it is of
its kind and not valid. Declaring one turns access control on for the
product (see ``access``). This module imports nothing of apiphant's: the
request context (``apiphant.current``) holds an ``Auth``.
"""
import sys
from dataclasses import dataclass, field

__all__ = ['Auth', 'ANONYMOUS', 'BadToken', 'register', 'sources']


@dataclass(frozen=True, slots=True)
class Auth:
    """``context.auth``: the caller of the running request.

    ``id`` names the caller in its source (a user's id, an API key's name
    as ``key:NAME``, an issuer's ``sub``); ``roles`` a frozenset of role
    names; ``claims`` the verified token's claims (``{}`` for a key);
    ``kind`` is ``'user'``, ``'key'``, ``'oidc'`` or ``'anonymous'``;
    ``expires`` when the token stops being valid (Unix seconds) or None.
    """
    id: object = None
    roles: frozenset = frozenset()
    claims: dict = field(default_factory=dict, compare=False, hash=False)
    kind: str = 'anonymous'
    expires: float = None

    def __bool__(self):
        """True for an authenticated caller: ``if context.auth: ...``."""
        return self.kind != 'anonymous'

    def has_role(self, *names):
        """Whether the caller has any of ``names``."""
        return not self.roles.isdisjoint(names)

    def __repr__(self):  # no claims: they may hold what a log should not
        return f'Auth(id={self.id!r}, roles={sorted(self.roles)!r}, kind={self.kind!r})'


ANONYMOUS = Auth()


class BadToken(Exception):
    """A source's own token that is not valid: ``BadToken('expired')``. The
    description goes to ``WWW-Authenticate`` as ``error_description``: say
    what a client can act on (expired, revoked), never which check failed."""

    def __init__(self, description='invalid'):
        super().__init__(description)
        self.description = description


_SOURCES = {}  # product package name: [sources], in the order declared


def register(source, depth=2):
    """Record ``source`` as an identity source of the product whose module
    declares it (the caller's caller, ``depth`` frames up)."""
    module = sys._getframe(depth).f_globals.get('__name__', '')
    product = module.partition('.')[0]
    known = _SOURCES.setdefault(product, [])
    if not any(s is source for s in known):
        known.append(source)
    return product


def sources(product):
    """The identity sources the modules of ``product`` declared."""
    return tuple(_SOURCES.get(product, ()))
