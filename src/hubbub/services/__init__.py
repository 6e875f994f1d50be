"""The rules. Services validate, decide and call engines; only services emit events, after the storing
transaction has committed, to explicit recipients. Nothing here imports the gateway or the platform.
"""
