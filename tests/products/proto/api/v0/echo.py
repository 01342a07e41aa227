def read(request):
    """Echo the request."""
    response = request.copy()
    response.server = 'proto'
    return response


def create(request):
    """Return None, meaning {}."""
    return None


def update(request):
    return ['not', 'a', 'dict']


def delete(request):
    return {'unencodable': object()}
