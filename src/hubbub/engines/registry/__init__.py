"""The connection registry: which connection holds each (user, terminal) slot, and presence derived from it."""
