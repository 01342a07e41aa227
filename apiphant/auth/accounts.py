"""Built-in accounts: users with passwords in the product's database, who log
in for a short-lived access token and a rotating refresh token.

::

    # myproduct/api/v0/auth.py: the module that declares accounts gets their actions
    from apiphant.auth import Accounts
    accounts = Accounts()   # POST /api/v0/auth/login, refresh, logout, me, password

``Accounts`` is an identity source: it vouches for apiphant's own access
tokens minted for the product (as ``Tokens`` does; a product declares one
or the other). Its tables (``apiphant_users``, ``apiphant_refresh_tokens``)
live in the product's database, the one generated CRUD uses.

- Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher()``,
  RFC 9106's low-memory profile: 3 passes over 64 MiB), in the hub's
  thread pool so that the hub never waits for a hash; at most
  ``max_hashing`` hashes run at once (64 MiB each), and a login that waits
  ``hash_wait`` seconds for its turn is a 503 with ``Retry-After``.
- A refresh token is 32 random bytes; only its SHA-256 is stored. Each
  refresh uses it up and gives a new one of the same family; a used one
  presented again revokes its whole family (someone holds a copy).
- Failed logins are throttled per login name and per client address, in
  this process's memory: past ``failures`` (per name) or
  ``address_failures`` (per address) failures, each further attempt waits
  1 s, 2 s, 4 s ... up to ``max_lock`` seconds (429 with ``Retry-After``);
  a success clears the name's count.
- An unknown login, a wrong password and a disabled user get the same 401
  after the same work (an unknown login is checked against a dummy hash).
- No password, hash or token is ever logged or answered in an error.
"""
import hashlib
import logging
import math
import os
import secrets
import time
import unicodedata

import gevent
import gevent.lock
import orjson
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from apiphant.auth import tokens
from apiphant.auth.access import ANYONE, AUTHENTICATED, unauthorized
from apiphant.auth.identity import register
from apiphant.auth.store import Store, now, prefix
from apiphant.current import context
from apiphant.errors import Forbidden, Invalid, NotFound, ServiceUnavailable, TooManyRequests
from apiphant.product import ProductError
from apiphant.routing import provided
from apiphant.validation import field

__all__ = ['Accounts', 'Throttle', 'normal_login']

log = logging.getLogger('apiphant')

MAX_LOGIN = 320  # an e-mail address's longest
_REFRESH_TOKEN_LENGTH = 43  # token_urlsafe(32)
ACTIONS = {'login': ANYONE, 'refresh': ANYONE, 'logout': AUTHENTICATED, 'me': AUTHENTICATED,
           'password': AUTHENTICATED}


def normal_login(value):
    """The form a login is stored and looked up in: NFKC, trimmed, case-folded
    (``Ada@Example.org`` and ``ada@example.org`` are one user); a
    ValueError when it is empty, too long or holds control characters."""
    if not isinstance(value, str):
        raise ValueError('should be a string')
    text = unicodedata.normalize('NFKC', value).strip().casefold()
    if not text:
        raise ValueError('should not be empty')
    if len(text) > MAX_LOGIN:
        raise ValueError(f'should be at most {MAX_LOGIN} characters')
    if any(unicodedata.category(c)[0] == 'C' for c in text):
        raise ValueError('should hold no control characters')
    return text


def digest(token):
    """The stored form of a refresh token or an API key: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class Throttle:
    """Failures per key (a login name, an address), in memory, at most
    ``size`` keys (the key whose last failure is oldest goes first). After
    ``free`` failures, each new one locks the key for 1 s, 2 s, 4 s ... up to
    ``cap`` seconds; a key without a failure for ``cap`` seconds starts
    afresh."""

    def __init__(self, free, cap, size=100_000, clock=time.monotonic):
        self.free, self.cap, self.size, self.clock = free, cap, size, clock
        self.entries = {}  # key: [failures, locked until, last failure]

    def wait(self, key):
        """Seconds ``key`` stays locked; 0 when it is not."""
        entry = self.entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry[1] - self.clock())

    def failed(self, key):
        """Count a failure; the seconds the key is now locked (0: not)."""
        moment = self.clock()
        entry = self.entries.pop(key, None)  # put back last: the order is that of the last failure
        if entry is None or moment - entry[2] > self.cap:
            entry = [0, 0.0, moment]
        entry[0] += 1
        entry[2] = moment
        lock = 0.0
        if entry[0] >= self.free:
            lock = min(2.0 ** min(entry[0] - self.free, 30), self.cap)
            entry[1] = moment + lock
        while len(self.entries) >= self.size:
            del self.entries[next(iter(self.entries))]
        self.entries[key] = entry
        return lock

    def forget(self, key):
        self.entries.pop(key, None)


def _verify(hasher, stored, password):
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


class Accounts:
    """The product's own users; see the module's docstring.

    ``access_minutes`` (15): life of an access token; ``refresh_days`` (30):
    of a refresh token, renewed by each refresh; ``tables`` (``'apiphant_'``):
    prefix of the table names; ``min_password`` (10) and ``max_password``
    (1024): lengths of a new password; ``hasher``: an argon2
    ``PasswordHasher`` (its defaults); ``max_hashing`` (the CPUs but one,
    at least 1): hashes at once in this process; ``hash_wait`` (5): seconds a login waits for its turn;
    ``failures`` (5) and ``address_failures`` (20): failed logins per login
    name and per client address before each new one locks it;
    ``max_lock`` (900): the longest lock, in seconds.
    """

    def __init__(self, *, access_minutes=15, refresh_days=30, tables='apiphant_', min_password=10,
                 max_password=1024, hasher=None, max_hashing=None, hash_wait=5.0, failures=5,
                 address_failures=20, max_lock=900):
        self.product = self.audience = register(self)
        if not 0 < access_minutes <= 24 * 60 or not 0 < refresh_days <= 3650:
            raise ValueError('Accounts: access_minutes should be from 1 to 1440, refresh_days from 1 to 3650')
        if not 1 <= min_password <= max_password <= 4096:
            raise ValueError('Accounts: min_password and max_password should be 1 <= min <= max <= 4096')
        self.access_minutes, self.refresh_days = access_minutes, refresh_days
        self.min_password, self.max_password = min_password, max_password
        self.hasher = hasher or PasswordHasher()
        self.max_hashing = max_hashing or max(1, (os.cpu_count() or 2) - 1)  # a CPU left for the hub
        self.hash_wait = hash_wait
        self._slots = gevent.lock.BoundedSemaphore(self.max_hashing)
        self._dummy = None  # a hash no password matches, for unknown logins
        self.logins = Throttle(failures, max_lock)
        self.addresses = Throttle(address_failures, max_lock)
        self._swept = 0.0
        metadata = sa.MetaData()
        tables = prefix(tables)
        self.users = sa.Table(
            f'{tables}users', metadata,
            sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
            sa.Column('login', sa.String(MAX_LOGIN), nullable=False),
            sa.Column('password_hash', sa.String(255), nullable=False),
            sa.Column('roles', sa.Text, nullable=False),
            sa.Column('disabled', sa.Boolean, nullable=False),
            sa.Column('created', sa.Float, nullable=False),
            sa.UniqueConstraint('login', name=f'uq_{tables}users_login'),
            sqlite_autoincrement=True)
        self.refresh_tokens = sa.Table(
            f'{tables}refresh_tokens', metadata,
            sa.Column('hash', sa.String(64), primary_key=True),
            sa.Column('user_id', sa.Integer, sa.ForeignKey(self.users.c.id, ondelete='CASCADE'), nullable=False),
            sa.Column('family', sa.String(32), nullable=False),
            sa.Column('created', sa.Float, nullable=False),
            sa.Column('expires', sa.Float, nullable=False),
            sa.Column('used', sa.Boolean, nullable=False),
            sa.Column('revoked', sa.Boolean, nullable=False),
            sa.Index(f'ix_{tables}refresh_tokens_user_id', 'user_id'),
            sa.Index(f'ix_{tables}refresh_tokens_family', 'family'))
        self.store = Store(self.product, metadata)

    def __repr__(self):
        return f'Accounts(product={self.product!r}, tables={self.users.name!r})'

    # Identity source, routing

    def apiphant_authenticate(self, token):
        return tokens.verify(token, audience=self.audience)

    def apiphant_actions(self):
        return {name: self._action(name, access) for name, access in ACTIONS.items()}

    def _action(self, name, access):
        method = getattr(self, name)
        action = provided(method, name, method.__doc__, access=access)
        action.__wrapped__ = getattr(type(self), name)  # its field() calls, for the API description
        return action

    def apiphant_start(self):
        """At server start: the tables, a key to sign with, the dummy hash."""
        if not tokens.keys():
            raise ProductError('Accounts signs access tokens: set APIPHANT_AUTH_KEYS (KID:SECRET, the secret '
                               '32 bytes or more) or --auth-keys-file')
        self.store.start()
        self.dummy_hash()

    def dummy_hash(self):
        if self._dummy is None:
            self._dummy = self._hashing(self.hasher.hash, secrets.token_urlsafe(24))
        return self._dummy

    # Passwords, in the hub's threads, a few at a time

    def _hashing(self, function, *args, before=None):
        if not self._slots.acquire(timeout=self.hash_wait):
            log.warning('%s: %d password hashes running, and a request waited %s s for a turn: 503',
                        self.product, self.max_hashing, self.hash_wait)
            raise ServiceUnavailable(retry_after=1)
        try:
            if before is not None:
                before()
            return gevent.get_hub().threadpool.apply(function, args)
        finally:
            self._slots.release()

    def hash(self, password):
        """The argon2id hash of a new password (checked first)."""
        return self._hashing(self.hasher.hash, self.check_password(password))

    def check_password(self, password):
        """``password`` when it may be a new password, else a ValueError."""
        if not isinstance(password, str):
            raise ValueError('should be a string')
        if not self.min_password <= len(password) <= self.max_password:
            raise ValueError(f'should be {self.min_password} to {self.max_password} characters')
        return password

    # Throttling

    def _throttled(self, login, client):
        wait = max(self.logins.wait(login), self.addresses.wait(client) if client else 0.0)
        if wait:
            raise TooManyRequests(retry_after=math.ceil(wait))

    def _failed(self, login, client):
        if self.logins.failed(login) == 1:
            log.warning('%s: failed logins for one account: it is locked, 1 s and doubling', self.product)
        if client and self.addresses.failed(client) == 1:
            log.warning('%s: failed logins from %s: it is locked, 1 s and doubling', self.product, client)

    # Storage

    def _user(self, connection, **where):
        users = self.users
        condition = users.c.login == where['login'] if 'login' in where else users.c.id == where['id']
        return connection.execute(sa.select(users).where(condition)).first()

    def _issue(self, connection, user, family=None):
        """A new refresh token of ``family`` (a new family by default) for ``user``."""
        token = secrets.token_urlsafe(32)
        moment = now()
        connection.execute(self.refresh_tokens.insert().values(
            hash=digest(token), user_id=user.id, family=family or secrets.token_hex(16), created=moment,
            expires=moment + self.refresh_days * 86400, used=False, revoked=False))
        if moment - self._swept > 3600:  # the tokens past their expiry, once an hour
            self._swept = moment
            connection.execute(self.refresh_tokens.delete().where(self.refresh_tokens.c.expires < moment))
        return token

    def _answer(self, user, refresh_token):
        roles = orjson.loads(user.roles)
        return {'access_token': tokens.mint(user.id, roles, minutes=self.access_minutes, audience=self.audience),
                'token_type': 'Bearer', 'expires_in': int(self.access_minutes * 60),
                'refresh_token': refresh_token,
                'user': {'id': user.id, 'login': user.login, 'roles': roles}}

    def _revoke(self, connection, **where):
        tokens_ = self.refresh_tokens
        condition = tokens_.c.family == where['family'] if 'family' in where else tokens_.c.user_id == where['user_id']
        connection.execute(tokens_.update().where(condition, tokens_.c.revoked == sa.false()).values(revoked=True))

    # The actions

    def login(self, request):
        """Log in with a login and a password.

        {"login", "password"} -> {"access_token", "token_type", "expires_in", "refresh_token",
        "user": {"id", "login", "roles"}}; 401 for a wrong login or password, 429 after too many."""
        login = field(request, 'login', is_required=True, valid_type=str, max_length=MAX_LOGIN)
        password = field(request, 'password', is_required=True, valid_type=str, max_length=4096)
        try:
            login = normal_login(login)
        except ValueError as error:
            raise Invalid('login', str(error)) from None
        client = context.client
        self._throttled(login, client)
        database = self.store.prepare()
        with database.connect() as connection:
            user = self._user(connection, login=login)
        stored = user.password_hash if user is not None else self.dummy_hash()
        good = self._hashing(_verify, self.hasher, stored, password,
                             before=lambda: self._throttled(login, client))  # those that waited meanwhile
        if not good or user is None or user.disabled:
            self._failed(login, client)
            raise unauthorized()
        self.logins.forget(login)
        rehash = self.hasher.check_needs_rehash(stored) and self._hashing(self.hasher.hash, password)
        with database.transaction() as connection:
            if rehash:
                connection.execute(self.users.update().where(self.users.c.id == user.id).values(password_hash=rehash))
            token = self._issue(connection, user)
        return self._answer(user, token)

    def refresh(self, request):
        """Trade a refresh token for new tokens.

        {"refresh_token"} -> as login answers, with a new refresh token (the one
        given is used up; presented again, it revokes every token that came from the same login)."""
        token = field(request, 'refresh_token', is_required=True, valid_type=str, max_length=256)
        with self.store.prepare().transaction() as connection:
            refresh_tokens = self.refresh_tokens
            query = sa.select(refresh_tokens).where(refresh_tokens.c.hash == digest(token))
            if connection.dialect.name != 'sqlite':
                query = query.with_for_update()
            row = connection.execute(query).first()
            outcome = 'invalid'
            if row is not None and not row.revoked and row.expires > now():
                if row.used:
                    self._revoke(connection, family=row.family)
                    outcome = 'reused'
                else:
                    user = self._user(connection, id=row.user_id)
                    if user is None or user.disabled:
                        self._revoke(connection, family=row.family)
                    else:
                        connection.execute(refresh_tokens.update().where(
                            refresh_tokens.c.hash == row.hash).values(used=True))
                        outcome = self._issue(connection, user, row.family)
        if outcome == 'reused':
            log.warning('%s: a used refresh token of user %s came again: its family is revoked',
                        self.product, row.user_id)
        if outcome in ('invalid', 'reused'):
            raise unauthorized('invalid_token', 'revoked' if outcome == 'reused' else None)
        return self._answer(user, outcome)

    def logout(self, request):
        """Log out: revoke refresh tokens.

        {"refresh_token"?} -> {}; revokes the tokens of that login, or, with none given, of
        every login of the caller. Access tokens already given stay valid until they expire."""
        token = field(request, 'refresh_token', valid_type=str, max_length=256)
        caller = self._caller()
        if caller is None:
            return {}
        with self.store.prepare().transaction() as connection:
            if token is None:
                self._revoke(connection, user_id=caller)
            else:
                family = connection.execute(sa.select(self.refresh_tokens.c.family).where(
                    self.refresh_tokens.c.hash == digest(token),
                    self.refresh_tokens.c.user_id == caller)).scalar()
                if family is not None:
                    self._revoke(connection, family=family)
        return {}

    def me(self, request):
        """Who calls.

        {} -> {"id", "login", "roles", "kind"}; login is null for a caller who is not a
        user of these accounts (an API key, another issuer's user)."""
        caller = self._caller()
        if caller is None:
            auth = context.auth
            return {'id': auth.id, 'login': None, 'roles': sorted(auth.roles), 'kind': auth.kind}
        with self.store.prepare().connect() as connection:
            user = self._user(connection, id=caller)
        if user is None:
            raise NotFound()
        return {'id': user.id, 'login': user.login, 'roles': orjson.loads(user.roles), 'kind': 'user'}

    def password(self, request):
        """Change the caller's password.

        {"password", "new_password"} -> as login answers; every refresh
        token of the user is revoked (other sessions end at their access token's expiry)."""
        current = field(request, 'password', is_required=True, valid_type=str, max_length=4096)
        new = field(request, 'new_password', is_required=True, valid_type=str)
        try:
            self.check_password(new)
        except ValueError as error:
            raise Invalid('new_password', str(error)) from None
        caller = self._caller()
        if caller is None:
            raise Forbidden()
        database = self.store.prepare()
        with database.connect() as connection:
            user = self._user(connection, id=caller)
        if user is None or user.disabled:
            raise unauthorized('invalid_token')
        client = context.client
        self._throttled(user.login, client)
        if not self._hashing(_verify, self.hasher, user.password_hash, current,
                             before=lambda: self._throttled(user.login, client)):
            self._failed(user.login, client)
            raise Invalid('password', 'is not the current password')
        hashed = self.hash(new)
        with database.transaction() as connection:
            connection.execute(self.users.update().where(self.users.c.id == user.id).values(password_hash=hashed))
            self._revoke(connection, user_id=user.id)
            token = self._issue(connection, user)
        return self._answer(user, token)

    @staticmethod
    def _caller():
        """The id of the caller when it is a user of apiphant's own tokens."""
        auth = context.auth
        return auth.id if auth.kind == 'user' and type(auth.id) is int else None

    # Management, for the command line (apiphant users ...)

    def add_user(self, login, password, roles=()):
        """A new user; its id. ValueError when the login or password will not do, or the login is taken."""
        login = normal_login(login)
        hashed = self.hash(password)
        database = self.store.prepare()
        try:
            with database.transaction() as connection:
                return connection.execute(self.users.insert().values(
                    login=login, password_hash=hashed, roles=_roles(roles), disabled=False,
                    created=now())).inserted_primary_key[0]
        except sa.exc.IntegrityError:
            raise ValueError(f'there is a user {login!r} already') from None

    def list_users(self):
        with self.store.prepare().connect() as connection:
            rows = connection.execute(sa.select(self.users).order_by(self.users.c.id)).all()
        return [{'id': row.id, 'login': row.login, 'roles': orjson.loads(row.roles), 'disabled': row.disabled,
                 'created': row.created} for row in rows]

    def update_user(self, login, *, password=None, roles=None, disabled=None):
        """Change a user; a password change or disabling revokes its refresh
        tokens. A ValueError when there is no such user."""
        login = normal_login(login)
        values = {}
        if password is not None:
            values['password_hash'] = self.hash(password)
        if roles is not None:
            values['roles'] = _roles(roles)
        if disabled is not None:
            values['disabled'] = disabled
        with self.store.prepare().transaction() as connection:
            user = self._user(connection, login=login)
            if user is None:
                raise ValueError(f'there is no user {login!r}')
            if values:
                connection.execute(self.users.update().where(self.users.c.id == user.id).values(**values))
            if password is not None or disabled:
                self._revoke(connection, user_id=user.id)
        return {'id': user.id, 'login': user.login,
                'roles': orjson.loads(values.get('roles', user.roles)),
                'disabled': values.get('disabled', user.disabled)}


def _roles(roles):
    roles = sorted(set(roles))
    for name in roles:
        if not isinstance(name, str) or not name or name.strip() != name or len(name) > 64:
            raise ValueError(f'a role is a name without spaces around it, not {name!r}')
    return orjson.dumps(roles).decode()
