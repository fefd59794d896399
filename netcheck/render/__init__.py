"""Renderers: turn a Report into text, JSON or a Nagios line. They compute nothing."""
