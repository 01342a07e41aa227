"""Identity and access: who calls, and what they may do.

::

    # myproduct/api/v0/auth.py: the module that declares accounts gets their actions
    from apiphant.auth import Accounts
    accounts = Accounts()      # /api/v0/auth/login, refresh, logout, me, password

    # myproduct/api/v0/reports.py
    from apiphant import action
    from apiphant.auth import role

    @action(access=role('editor'))
    def publish(request): ...

Modules: ``identity`` (the ``Auth`` record of ``context.auth``, the registry
of identity sources), ``access`` (``ANYONE``, ``AUTHENTICATED``, ``role()``
and the gate that checks them per request), ``tokens`` (apiphant's own
signed access tokens), ``accounts`` (users, passwords, refresh tokens, in the
product's database), ``keys`` (API keys for machines), ``oidc`` (tokens of
an external OpenID Connect issuer).
"""
from apiphant.lazy import lazy

_HOMES = {'Auth': 'identity', 'ANONYMOUS': 'identity', 'BadToken': 'identity',
          'Access': 'access', 'ANYONE': 'access', 'AUTHENTICATED': 'access', 'role': 'access',
          'mint': 'tokens', 'Tokens': 'tokens', 'Accounts': 'accounts', 'ApiKeys': 'keys', 'Issuer': 'oidc'}

__all__ = list(_HOMES)

__getattr__, __dir__ = lazy(__name__, {name: f'{__name__}.{home}' for name, home in _HOMES.items()}, __all__)
