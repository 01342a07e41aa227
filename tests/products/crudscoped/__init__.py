"""A sample product for tests/test_crud_scopes.py: notes seen only by their
owner (the X-Owner header; ``admin`` sees all)."""
