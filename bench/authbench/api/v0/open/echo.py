"""Echo, open to anyone (ACCESS = ANYONE): the same code as ../echo.py."""
from apiphant.auth import ANYONE

ACCESS = ANYONE


def read(request):
    """Return the request with "server": "authbench" added."""
    response = request.copy()
    response.server = 'authbench'
    return response
