from apiphant.auth import ANYONE

ACCESS = ANYONE  # everything under public/ is open, unless an action says otherwise
