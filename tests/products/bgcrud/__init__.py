"""A sample product for tests/test_background.py: a task that writes to a table."""
