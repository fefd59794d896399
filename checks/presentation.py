"""Layers 5-6: TLS, the handshake and the certificate."""
