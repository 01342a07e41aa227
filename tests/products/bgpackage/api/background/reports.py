from apiphant.background import seconds


@seconds(3600)
def cleanup():
    """Drop old reports."""
