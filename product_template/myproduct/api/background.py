"""Background tasks of myproduct: each function marked @seconds(N) runs every
N seconds in `apiphant-background myproduct` (under supervisor once deployed).

An example: uncomment it, and the scheduler logs a line every minute.
"""
# import logging
#
# from apiphant.background import seconds
#
# log = logging.getLogger(__name__)
#
#
# @seconds(60)
# def report_alive():
#     log.info('myproduct is alive')
