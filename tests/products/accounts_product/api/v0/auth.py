"""Built-in accounts: /api/v0/auth/login, refresh, logout, me, password."""
from apiphant.auth import Accounts

accounts = Accounts(failures=5, address_failures=12, max_hashing=2, hash_wait=20)
