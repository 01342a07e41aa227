"""Actions that answer 503 a given number of times, then succeed: each call
is counted here, on the server, with the headers it came with, so that a
test sees how often and how a client tried without timing anything."""
import collections
import os
import time

from apiphant import action, context
from apiphant.validation import ServiceUnavailable, field

_calls = collections.defaultdict(list)  # key -> the server's monotonic time of each call
_headers = collections.defaultdict(list)  # key -> (Authorization, Content-Type, X-Request-Id) of each


def _answer(request):
    key = field(request, 'key', is_required=True, valid_type=str, max_length=100)
    fails = field(request, 'fails', default_value=0, valid_type=int, min_value=0, max_value=100)
    retry_after = field(request, 'retry_after', valid_type=(int, type(None)), min_value=0, max_value=3600)
    until = field(request, 'until', valid_type=(str, type(None)), max_length=4096)
    _calls[key].append(time.monotonic())
    _headers[key].append([context.headers.get(name) for name in ('Authorization', 'Content-Type', 'X-Request-Id')])
    while until is not None and not os.path.exists(until):  # held until the test creates the file
        time.sleep(0.02)
    if len(_calls[key]) <= fails:
        raise ServiceUnavailable('not yet', retry_after=retry_after)
    return {'calls': len(_calls[key])}


def read(request):
    """Safe to repeat by its name: fails ``fails`` times (503, with
    ``Retry-After: retry_after`` when given), then answers its call count."""
    return _answer(request)


def create(request):
    """The same, under a name that is not safe to repeat."""
    return _answer(request)


@action
def search(request):
    """The same, safe to repeat only when the caller says so."""
    return _answer(request)


@action
def calls(request):
    """How often ``key`` was called, when (the server's monotonic seconds) and
    with which Authorization, Content-Type and X-Request-Id."""
    key = field(request, 'key', is_required=True, valid_type=str, max_length=100)
    return {'calls': len(_calls[key]), 'at': _calls[key], 'headers': _headers[key]}
