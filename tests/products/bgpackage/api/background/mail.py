from apiphant.background import seconds


@seconds(60)
def cleanup():
    """Drop sent mail."""


@seconds(300, timeout=30)
def send():
    """Send queued mail."""
