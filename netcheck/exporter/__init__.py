"""``netcheck serve``: a Prometheus exporter in blackbox_exporter's shape.

- :mod:`netcheck.exporter.config`: modules, the allow-list and the targets a config names;
- :mod:`netcheck.exporter.server`: the HTTP server (``/probe``, ``/metrics``), the concurrency
  bound and the per-probe deadline, owned by the handler as in blackbox's prober/handler.go;
- :mod:`netcheck.exporter.connections`: the connections (a cap below the descriptor limit, a
  total deadline per request, bodies bounded, one request per connection);
- :mod:`netcheck.exporter.command`: the CLI glue.
"""
