"""1:1 voice and video calls: the rules (``machine``, no I/O) and the service that stores and tells."""

from hubbub.services.calls.service import CallService

__all__ = ["CallService"]
