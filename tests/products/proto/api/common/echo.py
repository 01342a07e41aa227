def read(request):
    return {'routed': 'never: outside a version'}
