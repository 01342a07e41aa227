"""Echo: examples/myproduct's, the same code (the request bench/live.py loads with wrk)."""


def read(request):
    """Return the request with "server": "livebench" added."""
    response = request.copy()
    response.server = 'livebench'
    return response
