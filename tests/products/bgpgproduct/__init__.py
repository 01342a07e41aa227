"""A sample product for tests/test_background.py."""
