from apiphant import action


@action
def login(request):
    """A custom action."""
    return {'logged_in': request.get('login')}


@action(name='list')
def list_all(request):
    return {'listed': True}
