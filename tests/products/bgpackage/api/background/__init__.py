"""Background tasks as a package: its modules register their tasks when imported."""
from bgpackage.api.background import mail, reports  # noqa: F401
