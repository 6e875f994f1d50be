"""Shared by every role: errors, ids, models, clock."""
