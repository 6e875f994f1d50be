"""Hubbub: a self-hosted, distributed instant-messaging server.

Layers (data flows one way; see docs/architecture.md):
transport (``gateway``, ``platform``) -> ``protocol`` -> ``services`` -> ``engines``;
events flow back out through routing to the gateway.
"""

__version__ = "0.1.0"
