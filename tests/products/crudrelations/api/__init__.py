"""The API of crudrelations."""
