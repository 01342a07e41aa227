"""Actions provided by an object, as a CRUD table provides them."""


class Provider:
    def apiphant_actions(self):
        return {'read': lambda request: {'provided': 'read'},
                'list': lambda request: {'provided': 'list'}}


things = Provider()


def read(request):
    """Defined here: replaces the provided read."""
    return {'defined': 'read'}
