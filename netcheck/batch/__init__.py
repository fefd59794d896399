"""``netcheck batch``: many targets from a TOML profile (or stdin), diagnosed concurrently.

- :mod:`netcheck.batch.profile` reads the profile, line by line, so every bad line is
  reported with its number while the good ones still run;
- :mod:`netcheck.batch.run` diagnoses the targets under a concurrency bound, sharing one
  facts snapshot and one resolver cache, and applies expectations (``expect = "closed"``);
- :mod:`netcheck.batch.outputs` writes text, json, ndjson, junit, nagios or prometheus;
- :mod:`netcheck.batch.command` is the CLI glue (``add_arguments`` / ``run``).
"""
