"""Who is asking, and how much they may ask: the real client behind trusted
proxies, per-client rate limits (token buckets), and the per-process cap of
requests in flight beyond which new ones are shed with a fast 503.

Everything here is decided once at start-up (rates parsed, networks built)
and costs a dict look-up and some arithmetic per request.
"""
import ipaddress
import math
import re
import time

from apiphant.errors import ServiceUnavailable, TooManyRequests

__all__ = ['Rate', 'RateLimits', 'Proxies', 'networks', 'contains', 'SHED_RETRY_AFTER']

SHED_RETRY_AFTER = 1  # seconds a shed client is told to wait: requests in flight end fast or time out
_PERIODS = {'s': 1.0, 'second': 1.0, 'm': 60.0, 'minute': 60.0, 'h': 3600.0, 'hour': 3600.0}
_RATE = re.compile(r'\s*(\d+)\s*/\s*(s|second|m|minute|h|hour)\s*(?:burst\s+(\d+)\s*)?\Z')
MAX_CLIENTS = 100_000  # buckets kept at most; past it the fullest (the idlest) go first


class Rate:
    """``10/s``, ``100/m``, ``1000/h``, optionally ``burst N`` (default: the
    count): a bucket of ``burst`` tokens refilled at count per period."""

    __slots__ = ('text', 'per_second', 'burst')

    def __init__(self, text):
        match = _RATE.match(str(text))
        if not match or int(match[1]) < 1:
            raise ValueError(f'{text!r} is not a rate like 10/s, 100/m or 1000/h (optionally "burst N")')
        self.text = str(text).strip()
        self.per_second = int(match[1]) / _PERIODS[match[2]]
        self.burst = int(match[3] or match[1])
        if self.burst < 1:
            raise ValueError(f'{text!r}: a burst is at least 1')

    def __repr__(self):
        return f'Rate({self.text!r})'


class RateLimits:
    """Token buckets by (client, scope): the product's rate for every action
    without one of its own (scope None), an action's own rate for that action
    alone (scope: its path)."""

    def __init__(self, default=None, clock=time.monotonic):
        self.default = default
        self.clock = clock
        self.buckets = {}  # (client, scope): [tokens, time of the last look, rate]

    def check(self, route, client):
        """Take a token for ``client`` calling ``route``, or raise 429 with
        the seconds until the next token in Retry-After."""
        rate = route.rate_limit or self.default
        if rate is None:
            return
        key = (client, route.path if route.rate_limit else None)
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_CLIENTS:
                self.forget_idle(now)
            bucket = self.buckets[key] = [float(rate.burst), now, rate]
        else:
            bucket[0] = min(rate.burst, bucket[0] + (now - bucket[1]) * rate.per_second)
            bucket[1] = now
        if bucket[0] < 1.0:
            raise TooManyRequests(retry_after=math.ceil((1.0 - bucket[0]) / rate.per_second))
        bucket[0] -= 1.0

    def forget_idle(self, now):
        """Drop the buckets that have refilled (their clients are as new), or,
        when none has, the half that waited longest."""
        for key, (tokens, seen, rate) in list(self.buckets.items()):
            if tokens + (now - seen) * rate.per_second >= rate.burst:
                del self.buckets[key]
        if len(self.buckets) >= MAX_CLIENTS:
            oldest = sorted(self.buckets.items(), key=lambda item: item[1][1])[:len(self.buckets) // 2]
            for key, _ in oldest:
                del self.buckets[key]


def shed():
    """The fast answer of a process with too many requests in flight."""
    return ServiceUnavailable(retry_after=SHED_RETRY_AFTER)


def networks(text):
    """ipaddress networks from ``127.0.0.1, 10.0.0.0/8, ::1``; empty for ''."""
    found = []
    for part in str(text).replace(' ', ',').split(','):
        if part:
            try:
                found.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f'{part!r} is not an IP address or network') from None
    return tuple(found)


def contains(nets, address):
    """Whether ``address`` (text) is in one of ``nets`` (ipaddress networks);
    an IPv4-mapped IPv6 address counts as its IPv4; False for what is not an
    address (None, a Unix socket's path)."""
    try:
        ip = ipaddress.ip_address(address)
    except (TypeError, ValueError):
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in nets)


class Proxies:
    """The proxies whose ``X-Forwarded-For`` and ``X-Real-IP`` are believed.
    The client is the last address of X-Forwarded-For that is not a trusted
    proxy (each proxy appends the address it got the request from, so what
    is left of that was written by the client and proves nothing), else
    X-Real-IP; from any other peer, both headers are ignored."""

    def __init__(self, nets):
        self.nets = nets
        self.trusted = {}  # peer address: bool, decided once per address
        # (peer, X-Forwarded-For, X-Real-IP): the client, decided once: the
        # same few proxies forward the same clients again and again, and
        # reading addresses costs microseconds.
        self.clients = {}

    def __bool__(self):
        return bool(self.nets)

    def trusts(self, peer):
        trusted = self.trusted.get(peer)
        if trusted is None:
            if len(self.trusted) > MAX_CLIENTS:
                self.trusted.clear()
            trusted = self.trusted[peer] = contains(self.nets, peer)
        return trusted

    def client(self, peer, forwarded_for, real_ip):
        """The real client of a request that came from the trusted ``peer``."""
        key = (peer, forwarded_for, real_ip)
        client = self.clients.get(key)
        if client is None:
            if len(self.clients) > MAX_CLIENTS:
                self.clients.clear()
            client = self.clients[key] = self._client(peer, forwarded_for, real_ip)
        return client

    def _client(self, peer, forwarded_for, real_ip):
        if forwarded_for is not None:
            address = None
            for text in reversed(forwarded_for.decode('latin-1').split(',')):
                found = _address(text)
                if found is None:
                    break  # not an address: what is left of it is not to be believed either
                address = found
                if not contains(self.nets, address):
                    return address
            if address is not None:  # proxies all the way: the first of them asked
                return address
        if real_ip is not None:
            address = _address(real_ip.decode('latin-1'))
            if address is not None:
                return address
        return peer


def _address(text):
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text[1:-1] if text[:1] == '[' and text[-1:] == ']' else text))
    except ValueError:
        return None
