import time


def read(request):
    """Sleep cooperatively (time is patched by gevent); say when, on the server's clock."""
    started = time.monotonic()
    time.sleep(request.get('seconds', 0.5))
    return {'slept': request.get('seconds', 0.5), 'started': started, 'ended': time.monotonic()}
