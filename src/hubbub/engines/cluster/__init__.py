"""Cluster membership: which nodes are alive, their load, node numbers, whether the shared backend answers."""
