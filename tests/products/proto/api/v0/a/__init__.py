def read(request):
    return {'target': 'a'}
