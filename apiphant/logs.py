"""The log format of every apiphant command."""
import logging
import sys

__all__ = ['configure']


def configure(level):
    logging.basicConfig(level=level, stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s')
