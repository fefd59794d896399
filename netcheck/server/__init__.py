"""``netcheck server``: the other end of the path, checked on the server itself.

The slides' "Equipo Servidor" rungs, reciprocal to the client's: this host's own link,
address, route and gateway towards the client; the port listening (``ss -tlp``) and
answering a local handshake (``nping --tcp-connect localhost``); the input firewall; the
service's unit (``systemctl status``) and processes (``ps aux``); and the client's request
found in the service's log ("check the log against the client's").

``command`` is the CLI glue, ``listeners`` reads the socket tables, ``measure`` gathers what
the checks judge, once per run, ``options`` carries the settings to the checks
(``checks/server/``).
"""
