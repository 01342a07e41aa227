"""Echo, for authenticated callers only (the default): examples/myproduct's echo, the same code."""


def read(request):
    """Return the request with "server": "authbench" added."""
    response = request.copy()
    response.server = 'authbench'
    return response
