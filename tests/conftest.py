import os
import pathlib
import socket

import pytest

PRODUCTS = pathlib.Path(__file__).parent / 'products'
ROOT = pathlib.Path(__file__).parent.parent


def require_services():
    """True where CI demands that a service-backed test runs instead of skipping."""
    return os.environ.get('APIPHANT_REQUIRE_SERVICES') == '1'


def skip_or_fail(reason):
    if require_services():
        pytest.fail(f'{reason} (APIPHANT_REQUIRE_SERVICES=1)')
    pytest.skip(reason)


@pytest.fixture(scope='module')
def proto(request):
    """The protocol test product, served for a module."""
    from apiphant.pytest_plugin import ServedProduct
    server = ServedProduct(PRODUCTS / 'proto').start()
    yield server
    server.stop()


def raw_exchange(server, data, timeout=5.0, read_until_close=False):
    """Send raw bytes, return the raw bytes of the answer (one response, or
    everything until the server closes)."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close and _complete(b''.join(chunks)):
                break
        return b''.join(chunks)


def _complete(data):
    head, sep, body = data.partition(b'\r\n\r\n')
    if not sep:
        return False
    for line in head.split(b'\r\n')[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            return len(body) >= int(value)
    return False
