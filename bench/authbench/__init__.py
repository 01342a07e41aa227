"""The product bench/auth_cost.py serves: examples/myproduct's echo behind apiphant's own tokens."""
