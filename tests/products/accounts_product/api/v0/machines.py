"""API keys for machines; the gate asks the database again at each call (cache_seconds=0)."""
from apiphant.auth import ApiKeys

keys = ApiKeys(cache_seconds=0)
