import os
import time

from apiphant import action


def read(request):
    """Wait (cooperatively) until the file ``request.until`` exists: a request
    held in flight for as long as a test wants, with no clock involved."""
    while not os.path.exists(request.until):
        time.sleep(0.02)
    return {'held': True}


@action(rate_limit='2/m')
def update(request):
    """An action with a rate of its own."""
    return {'updated': True}
