"""Background tasks of myproduct, run by `apiphant-background examples/myproduct`."""
import logging

from apiphant.background import seconds

log = logging.getLogger('myproduct')


@seconds(60)
def report_alive():
    log.info('myproduct is alive')
