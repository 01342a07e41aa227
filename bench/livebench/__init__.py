"""The product bench/live.py serves: an echo and a watched table, open to anyone."""
