"""Measuring primitives: they return what they saw and never judge or print."""
