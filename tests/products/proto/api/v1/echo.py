def read(request):
    return {'version': 1}
