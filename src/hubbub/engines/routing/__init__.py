"""Routing: getting encoded frames, closes and node broadcasts to the nodes that hold the connections."""
