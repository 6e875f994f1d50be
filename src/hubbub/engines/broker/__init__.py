"""Routing of events to connections, and the registry of who is connected where (presence).

``base.Broker`` is the interface; ``memory.MemoryBroker`` serves one process.
"""
