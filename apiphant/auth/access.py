"""Who may call an action: ``ANYONE``, ``AUTHENTICATED``, ``role('admin')``;
and the ``Gate`` that checks a request's bearer token against them.

Where access is declared, nearest first: ``@action(access=...)`` (or a
table's ``access=``), then ``ACCESS = ...`` in the action's module, then in
each package above it up to ``myproduct.api``. Undeclared: ``AUTHENTICATED``
once the product declares an identity source (secure by default: ``ANYONE``
must be written), ``ANYONE`` when it declares none (0.2's open API, which
start-up logs).

A request without a token is anonymous; a token no source knows, or that its
source finds invalid, is a 401 whatever the action's access (a client that
sends a token wants to know it is bad); an authenticated caller without the
role is a 403.
"""
import logging
import sys
import time

from apiphant.auth.identity import ANONYMOUS, BadToken
from apiphant.errors import Forbidden, Unauthorized

__all__ = ['Access', 'ANYONE', 'AUTHENTICATED', 'role', 'Gate', 'settle', 'declared']

log = logging.getLogger('apiphant')


class Access:
    """Who may call: anyone, or an authenticated caller with (when ``roles``
    is not None) any of ``roles``; ``str()`` is what ``--routes`` and the
    API description show."""

    __slots__ = ('roles', 'authenticated', 'label')

    def __init__(self, *, authenticated, roles=None, label):
        self.authenticated = authenticated
        self.roles = roles  # a frozenset: any of them; None: no role needed
        self.label = label

    def __str__(self):
        return self.label

    def __repr__(self):
        return self.label

    def __eq__(self, other):
        return isinstance(other, Access) and (self.authenticated, self.roles) == (other.authenticated, other.roles)

    def __hash__(self):
        return hash((self.authenticated, self.roles))


ANYONE = Access(authenticated=False, label='anyone')
AUTHENTICATED = Access(authenticated=True, label='authenticated')


def role(*names):
    """Callers with any of the roles ``names``: ``role('admin')``,
    ``role('editor', 'admin')``."""
    if not names or not all(isinstance(name, str) and name and name.strip() == name for name in names):
        raise ValueError(f'role() takes role names, like role(\'admin\'), not {names!r}')
    return Access(authenticated=True, roles=frozenset(names), label='role ' + ' or '.join(sorted(names)))


def declared(value, where):
    """``value`` if it is an Access; a ValueError naming ``where`` otherwise."""
    if not isinstance(value, Access):
        raise ValueError(f'{where}: access should be ANYONE, AUTHENTICATED or role(...) from apiphant.auth, '
                         f'not {value!r}')
    return value


def settle(routes, package, sources):
    """The routes with the access each one has, nearest declaration first
    (see the module's docstring); ``routes`` ({path: Route}) is not changed."""
    from dataclasses import replace
    default = AUTHENTICATED if sources else ANYONE
    settled = {}
    for path, route in routes.items():
        if not route.version:  # /health and the other routes of apiphant's own
            settled[path] = route
            continue
        access = route.access
        module = route.module
        while access is None and module.startswith(f'{package}.api'):
            found = getattr(sys.modules.get(module), 'ACCESS', None)
            if found is not None:
                access = declared(found, f'{module}.ACCESS')
            module = module.rpartition('.')[0]
        settled[path] = replace(route, access=access or default)
    return settled


_CACHE_SIZE = 10_000
_BEARER = ('bearer ', 'Bearer ', 'BEARER ')


class Gate:
    """Checks the ``Authorization`` of a request against the access of its
    route, with the product's identity sources. A verified token is kept
    (up to 10,000, until it expires), so a caller pays for verifying its
    token once, not per request; a bad token is verified each time."""

    def __init__(self, sources):
        self.sources = tuple(sources)
        self.known = {}  # token: Auth
        self.clock = time.time

    def check(self, access, authorization):
        """The caller's Auth, when ``access`` allows it; else 401 or 403.
        ``authorization`` is the header's value (bytes or str) or None."""
        if authorization is None:
            if access.authenticated:
                raise unauthorized()
            return ANONYMOUS
        auth = self.known.get(authorization)
        if auth is None or auth.expires is not None and auth.expires <= self.clock():
            auth = self.authenticate(authorization)
        roles = access.roles  # the caller is authenticated: only a role can be missing
        if roles is not None and roles.isdisjoint(auth.roles):
            raise Forbidden()
        return auth

    def authenticate(self, authorization):
        """The Auth of a header's value; 401 when no source vouches for it."""
        self.known.pop(authorization, None)
        header = authorization.decode('latin-1') if isinstance(authorization, bytes) else authorization
        if header[:7] not in _BEARER or not header[7:].strip():
            raise unauthorized('invalid_request', 'use Authorization: Bearer TOKEN')
        token = header[7:].strip()
        try:
            for source in self.sources:
                auth = source.apiphant_authenticate(token)
                if auth is not None:
                    if not auth:
                        raise TypeError(f'{source!r} vouched for a token with an anonymous Auth: give it a kind')
                    break
            else:
                raise BadToken()
        except BadToken as bad:
            raise unauthorized('invalid_token', bad.description) from None
        if auth.expires is not None and auth.expires <= self.clock():
            raise unauthorized('invalid_token', 'expired')
        if len(self.known) >= _CACHE_SIZE:
            self.known.clear()  # rare: ten thousand live tokens in a process; they are verified again
        self.known[authorization] = auth
        return auth


def unauthorized(error=None, description=None):
    """401 with the RFC 6750 challenge: ``Bearer``, and ``error=`` when a
    token was sent and refused."""
    challenge = 'Bearer realm="api"'
    if error is not None:
        challenge += f', error="{error}"'
        if description:
            challenge += f', error_description="{description}"'
    refusal = Unauthorized()
    refusal.headers = (('WWW-Authenticate', challenge),)
    return refusal
