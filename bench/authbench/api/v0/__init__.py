"""Version 0: echo (authenticated, the default once a source is declared) and open/echo (anyone)."""
