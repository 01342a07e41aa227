"""Version 0: echo, and rows (watched)."""
