"""Delivery proof: the exactly-once checker (CI chaos run, soak, canary), the canary, per-message tracing."""
