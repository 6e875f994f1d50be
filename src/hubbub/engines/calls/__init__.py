"""Where calls live: one copy every node sees (in-process on one node, Redis in a cluster)."""
