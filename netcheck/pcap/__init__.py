"""The capture explainer: ``netcheck pcap FILE`` and ``netcheck trace TARGET``.

A pcap/pcapng file (or packets captured live by :mod:`netcheck.pcap.trace`) is read as a
stream (:mod:`~netcheck.pcap.reader`), each frame decoded down to TCP/UDP/ICMP
(:mod:`~netcheck.pcap.decode`), TCP packets folded into per-session state the way Wireshark's
TCP analysis sees them (:mod:`~netcheck.pcap.sessions`), payloads recognised as TLS, HTTP, DNS,
SMTP, POP3, SSH, IKE or ESP (:mod:`~netcheck.pcap.protocols`), and the result explained in
English, Spanish or Catalan (:mod:`~netcheck.pcap.explain`, :mod:`~netcheck.pcap.render`).
:mod:`~netcheck.pcap.filters` is ``--filter``; :mod:`~netcheck.pcap.writer` writes pcap and
pcapng files (``trace -w``, the tests' captures, the benchmark's million packets).

Nothing heavy is imported here: the CLI imports :mod:`netcheck.pcap.command` only when one of
the two commands is chosen, and that module imports the rest on demand.
"""

SCHEMA = "netcheck-pcap/1"
