"""netcheck's built-in checks, one module per layer (installed as ``netcheck.checks``)."""
