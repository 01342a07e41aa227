"""Actions anyone may call (each module says ACCESS = ANYONE)."""
