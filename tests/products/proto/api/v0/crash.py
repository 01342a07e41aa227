def read(request):
    raise RuntimeError('secret detail that must not reach the client')


def create(request):
    return request.no_such_field


def update(request):
    """Raise what is not an Exception: SystemExit, KeyboardInterrupt, GreenletExit, a gevent.Timeout."""
    import gevent
    escapes = {'SystemExit': SystemExit(3), 'KeyboardInterrupt': KeyboardInterrupt(),
               'GreenletExit': gevent.GreenletExit(), 'Timeout': gevent.Timeout(1)}
    raise escapes[request.kind]
