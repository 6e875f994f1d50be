"""State for hot groups (push-pull delivery): a bounded cache of recent messages per group.

``base.HotState`` is the interface; ``memory`` serves one process, ``redis`` a cluster. Docs:
docs/architecture.md, "Hot groups".
"""
