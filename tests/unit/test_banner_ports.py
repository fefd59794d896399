"""Which ports get no banner wait: the client speaks first there (issue 17)."""

from __future__ import annotations

import pytest

from netcheck.probes.banner import client_speaks_first


@pytest.mark.parametrize("port, protocol", [(80, "HTTP"), (443, "HTTPS"), (53, "DNS"),
                                            (993, "IMAPS"), (5432, "PostgreSQL")])
def test_client_first_ports_are_named(port: int, protocol: str) -> None:
    assert client_speaks_first(port) == protocol


@pytest.mark.parametrize("port", [21, 22, 25, 110, 143, 587, 3306, 5900, 7000])
def test_ports_whose_server_greets_or_unknown_are_waited_on(port: int) -> None:
    assert client_speaks_first(port) is None
