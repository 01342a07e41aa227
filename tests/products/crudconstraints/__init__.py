"""A sample product for tests/test_crud_constraints.py: unique columns and
sets, indexes, required and defaulted columns, choices; CRUD_DECLARATION
picks the declaration, so that a test can change it between two starts."""
