"""Tests against a real lab: network namespaces, veth pairs, real servers (need root)."""
