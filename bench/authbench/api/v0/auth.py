"""Trusts apiphant's own tokens (audience 'authbench'): declaring it turns access control on."""
from apiphant.auth import Tokens

tokens = Tokens()
