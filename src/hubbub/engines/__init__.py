"""Engines: storage, broker (routing, presence, node queues), rate limits.

Each is an interface (``base.py``) with an embedded and a cluster implementation that pass one contract
suite (tests/contract).
"""
