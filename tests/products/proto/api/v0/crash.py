def read(request):
    raise RuntimeError('secret detail that must not reach the client')


def create(request):
    return request.no_such_field
