"""Built-in accounts: /api/v0/auth/login, refresh, logout, me, password.

The tests hash with a light argon2id (1 pass over 8 MiB: they check what is
done, not what it costs) unless ACCOUNTS_ARGON2=default (RFC 9106's
low-memory profile, apiphant's default) or owasp (OWASP's cheat sheet's
first choice: 2 passes over 19 MiB), for bench/auth_login.py; ACCOUNTS_MAX_HASHING and
ACCOUNTS_HASH_WAIT narrow the hashing."""
import os

from argon2 import PasswordHasher

from apiphant.auth import Accounts

HASHERS = {'default': None, 'owasp': PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)}

accounts = Accounts(
    failures=5, address_failures=12,
    hasher=HASHERS.get(os.environ.get('ACCOUNTS_ARGON2'), PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)),
    max_hashing=int(os.environ.get('ACCOUNTS_MAX_HASHING', 2)),
    hash_wait=float(os.environ.get('ACCOUNTS_HASH_WAIT', 30)))
