def read(request):
    return {'routed': 'never: vx is not a version'}
