"""netcheck: why can't this host reach that server? OSI layer by layer, on the real path."""

__version__ = "0.1.0"
