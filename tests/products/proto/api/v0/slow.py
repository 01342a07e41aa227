import time


def read(request):
    """Sleep cooperatively (time is patched by gevent)."""
    time.sleep(request.get('seconds', 0.5))
    return {'slept': request.get('seconds', 0.5)}
