"""The chat protocol without I/O: frame schemas, close codes and the per-connection session state machine.

Docs: docs/protocol.md ("WebSocket").
"""
