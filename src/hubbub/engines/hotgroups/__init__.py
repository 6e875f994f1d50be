"""State for hot groups (push-pull delivery): members' offsets and a bounded cache of recent messages.

``base.HotState`` is the interface; ``memory`` serves one process, ``redis`` a cluster. Docs:
docs/architecture.md, "Hot groups".
"""
