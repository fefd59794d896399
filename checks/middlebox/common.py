"""What the proxy and portal rungs share: the web schemes and the proxy a request goes through."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netcheck.probes.http import ProxyChoice, UrlParts
    from netcheck.runner import Context

HTTP_SCHEMES = ("http", "https")


def proxy_choice(ctx: Context, parts: UrlParts) -> ProxyChoice:
    """The proxy this run's request goes through (``--proxy`` / ``--no-proxy`` / the
    environment), as :func:`netcheck.probes.http.choose_proxy` reads them."""
    from netcheck.probes import http

    return http.choose_proxy(parts.scheme, parts.host, parts.port, os.environ,
                             explicit=ctx.options.proxy, disabled=ctx.options.no_proxy)


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)
