def read(request):
    return {
