"""A product whose table declaration changes between runs (CRUD_DECLARATION)."""
