"""The API of bench/livebench."""
