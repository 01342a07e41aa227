import time


def read(request):
    """Spin in CPU without yielding to the hub (a stuck worker)."""
    end = time.monotonic() + request.get('seconds', 1)
    while time.monotonic() < end:
        pass
    return {'spun': request.get('seconds', 1)}
