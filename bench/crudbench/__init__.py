"""The product bench/crud_peer.py serves: the README's tasks table with the index its list uses."""
