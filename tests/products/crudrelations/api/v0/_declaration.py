"""Which declaration this process serves."""
import os

DECLARATION = os.environ.get('RELATIONS_DECLARATION', 'strict')
LOOSE = DECLARATION == 'loose'
