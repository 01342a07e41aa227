"""Version 0."""
