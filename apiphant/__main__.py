"""``python -m apiphant``: the daemon, with gevent patched before anything else."""
from gevent import monkey

monkey.patch_all()

from apiphant.cli import main  # noqa: E402

main()
