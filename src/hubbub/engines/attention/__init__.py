"""Which terminals are in the background (engines/attention/base.py)."""
