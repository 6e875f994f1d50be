"""Per-key token buckets (sends, logins, friend requests); in-process here, Redis for clusters."""
