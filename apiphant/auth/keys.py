"""API keys: bearer tokens for machines, made with ``apiphant keys PRODUCT
add NAME --role ROLE``, shown once, stored as their SHA-256 only.

::

    # myproduct/api/v0/__init__.py, or any module of the api tree
    from apiphant.auth import ApiKeys
    keys = ApiKeys()

A key is ``apk_`` and 32 random bytes (URL-safe base64): that prefix tells
it from the other sources' tokens (any other token is left to them). A key
has a unique name, roles, when it was made and when it was revoked. The
caller of a key is ``Auth(id='key:NAME', roles, kind='key')``, kept by the
gate for ``cache_seconds`` (10): the database is asked again after that, so
revoking a key takes effect within that time. The look-up is one statement
by a unique column, compiled once, cooperative as generated CRUD's reads.
High-entropy keys need no slow hash: SHA-256 is as good as argon2 here.
"""
import re
import secrets
import time

import orjson
import sqlalchemy as sa

from apiphant.auth.accounts import _roles, digest
from apiphant.auth.identity import Auth, BadToken, register
from apiphant.auth.store import Store, now, prefix

__all__ = ['ApiKeys', 'PREFIX']

PREFIX = 'apk_'
_KEY = re.compile(r'apk_[A-Za-z0-9_-]{43}\Z')
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z')


class ApiKeys:
    """The product's API keys; see the module's docstring. ``tables``
    (``'apiphant_'``): prefix of the table name (``apiphant_api_keys``)."""

    def __init__(self, *, cache_seconds=10, tables='apiphant_'):
        self.product = register(self)
        if not 0 <= cache_seconds <= 3600:
            raise ValueError('ApiKeys: cache_seconds should be from 0 to 3600')
        self.cache_seconds = cache_seconds
        metadata = sa.MetaData()
        tables = prefix(tables)
        self.keys = sa.Table(
            f'{tables}api_keys', metadata,
            sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
            sa.Column('name', sa.String(64), nullable=False),
            sa.Column('hash', sa.String(64), nullable=False),
            sa.Column('roles', sa.Text, nullable=False),
            sa.Column('created', sa.Float, nullable=False),
            sa.Column('revoked', sa.Float, nullable=True),
            sa.UniqueConstraint('name', name=f'uq_{tables}api_keys_name'),
            sa.UniqueConstraint('hash', name=f'uq_{tables}api_keys_hash'),
            sqlite_autoincrement=True)
        self.store = Store(self.product, metadata)
        self._lookup = sa.select(self.keys.c.name, self.keys.c.roles, self.keys.c.revoked).where(
            self.keys.c.hash == sa.bindparam('hash'))

    def __repr__(self):
        return f'ApiKeys(product={self.product!r}, table={self.keys.name!r})'

    def apiphant_start(self):
        """At server start: the table of keys."""
        self.store.start()

    def apiphant_authenticate(self, token):
        if not token.startswith(PREFIX):
            return None
        if not _KEY.match(token):
            raise BadToken()
        row = self.store.prepare().read_key(self._lookup, {'hash': digest(token)})
        if row is None:
            raise BadToken()
        name, roles, revoked = row
        if revoked is not None:
            raise BadToken('revoked')
        # The gate keeps it until then; a key revoked meanwhile is refused at the next look-up.
        return Auth(id=f'key:{name}', roles=frozenset(orjson.loads(roles)), kind='key',
                    expires=time.time() + max(self.cache_seconds, 0.001))

    # Management, for the command line (apiphant keys ...)

    def add(self, name, roles=()):
        """A new key named ``name``: the key itself, which is not kept. A
        ValueError when the name will not do or is taken (by a revoked key
        too)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError('a key name is 1 to 64 letters, digits, _ . @ -, starting with a letter or digit')
        key = PREFIX + secrets.token_urlsafe(32)
        try:
            with self.store.prepare().transaction() as connection:
                connection.execute(self.keys.insert().values(name=name, hash=digest(key), roles=_roles(roles),
                                                              created=now(), revoked=None))
        except sa.exc.IntegrityError:
            raise ValueError(f'there is a key named {name!r} already') from None
        return key

    def list(self):
        with self.store.prepare().connect() as connection:
            rows = connection.execute(sa.select(self.keys).order_by(self.keys.c.id)).all()
        return [{'name': row.name, 'roles': orjson.loads(row.roles), 'created': row.created,
                 'revoked': row.revoked} for row in rows]

    def revoke(self, name):
        """Revoke the key ``name``; False when there is no such key not yet revoked."""
        with self.store.prepare().transaction() as connection:
            done = connection.execute(self.keys.update().where(
                self.keys.c.name == name, self.keys.c.revoked.is_(None)).values(revoked=now()))
        return done.rowcount == 1
