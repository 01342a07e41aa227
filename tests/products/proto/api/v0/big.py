def read(request):
    """An answer of ``request.size`` bytes or so, for tests of slow readers."""
    return {'x': 'a' * request.size}
