from apiphant.validation import field, strict


@strict
def create(request):
    """Takes a title and an item with a name, nothing else."""
    title = field(request, 'title', is_required=True, valid_type=str, max_length=20)
    field(request, 'item', is_required=True, valid_type=dict)
    name = field(request.item, 'name', valid_type=str)
    return {'title': title, 'name': name}
