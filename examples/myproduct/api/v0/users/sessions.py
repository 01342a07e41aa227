"""Sessions of a user: a nested target, /api/v0/users/sessions/<action>."""
import hmac

from apiphant import action, context
from apiphant.validation import Unauthorized, field

_PASSWORDS = {'alice': 'wonderland'}  # an example; a product keeps these hashed in its database


def create(request):
    """Log in: {"login", "password"} → {"login", "request_id"}."""
    login = field(request, 'login', is_required=True, valid_type=str, min_length=1, max_length=64)
    password = field(request, 'password', is_required=True, valid_type=str, max_length=1024)
    known = _PASSWORDS.get(login, '')
    if not hmac.compare_digest(known.encode(), password.encode()) or login not in _PASSWORDS:
        raise Unauthorized('wrong login or password')
    return {'login': login, 'request_id': context.request_id}


@action
def whoami(request):
    """A custom action: who is calling, as the server sees it."""
    return {'client': context.client, 'user_agent': context.headers.get('User-Agent')}
