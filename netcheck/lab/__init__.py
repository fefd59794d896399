"""The network-namespace lab: topologies and fault scenarios for tests, demo and students."""
