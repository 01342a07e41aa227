"""Product code that catches a ``Taken`` inside its own transaction and goes on."""
from apiphant.crud import database
from apiphant.crud.integrity import Taken

from crudconstraints.api.v0.accounts import accounts


def create(request):
    """Create an account per e-mail of ``request.emails`` in one transaction;
    an e-mail another account holds is skipped: ``{"created": [ids], "taken": [emails]}``."""
    created, taken = [], []
    with database().transaction():
        for email in request['emails']:
            try:
                created.append(accounts.create({'email': email, 'team': request.get('team')})['id'])
            except Taken:
                taken.append(email)
    return {'created': created, 'taken': taken}
