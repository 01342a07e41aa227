"""``python -m apiphant.background PRODUCT``: the scheduler, as ``apiphant-background``,
with gevent patched before the scheduler is imported."""
from gevent import monkey

monkey.patch_all()

from apiphant.background.cli import main  # noqa: E402

main()
