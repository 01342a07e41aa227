"""A table whose lists answer total_objects unless asked not to (the
answer of apiphant before cursors), with text of no declared length."""
from apiphant.crud import Column, Table

counted = Table('counted', text=Column(str, max_length=None), rank=Column(int), total=True,
                sort_by=['-rank', 'id'])
