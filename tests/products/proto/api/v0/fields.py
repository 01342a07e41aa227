from apiphant.validation import field


def read(request):
    """An action that declares its one field: id, a required int."""
    return {'id': field(request, 'id', is_required=True, valid_type=int)}
