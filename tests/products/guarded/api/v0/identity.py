"""Trusts apiphant's own tokens: declaring it turns access control on."""
from apiphant.auth import Tokens

tokens = Tokens()
