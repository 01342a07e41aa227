"""Echo: POST /api/v0/echo/read answers the request with the server's name added."""


def read(request):
    """Return the request with "server": "myproduct" added."""
    response = request.copy()
    response.server = 'myproduct'
    return response
