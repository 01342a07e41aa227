def read(request):
    return {'target': 'a/b/c', 'nested': request.outer.inner if 'outer' in request else None}
