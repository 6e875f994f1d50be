"""Engines: storage, routing, the connection registry, cluster membership, hot-group caches, rate limits, blobs.

Each is an interface (``base.py``) with an embedded and a cluster implementation that pass one contract
suite (tests/contract). The Redis ones share one client per node (``redis_link.py``) and one key layout
(``redis_keys.py``).
"""
