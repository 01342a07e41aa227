from apiphant.auth import Tokens

tokens = Tokens()
