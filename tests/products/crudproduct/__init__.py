"""The CRUD test product: tables declared as a product owner would."""
