"""The API of bench/authbench."""
