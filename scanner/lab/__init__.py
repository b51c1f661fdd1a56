"""The offline lab: local servers that play the network for tests and demos."""
