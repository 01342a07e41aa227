def read(request):
    return {}
