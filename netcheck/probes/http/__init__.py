"""HTTP/1.1, measured hop by hop: the redirect chain as ``wget`` prints it, the phase timings
``curl -w`` and blackbox_exporter give, and every way a server can fail to answer told apart.

A client on raw non-blocking sockets (TLS through ``ssl.MemoryBIO``), not urllib: the phases
(DNS, connect, TLS, time to first byte, transfer) are timed one by one, the segment size can be
forced (``mss``: the path-MTU check compares a small-segment fetch with a normal one), and a
hostile server is bounded everywhere — headers at ``max_header_bytes``, bodies at
``max_body_bytes`` (read, counted, never stored beyond a small sample), every wait by
``timeout`` and the whole fetch by ``deadline``. ``fetch`` never raises for anything the
network does: the answer is an :class:`HttpResult` whose ``outcome`` says what happened.

Proxies follow curl's reading of ``http_proxy`` / ``https_proxy`` / ``all_proxy`` / ``no_proxy``
(lower case first, then upper case, except ``HTTP_PROXY``, which curl ignores since httpoxy):
absolute-form requests for http, ``CONNECT`` for https, TLS to an ``https://`` proxy first.
Credentials in a proxy URL are used, and shown only as ``***``.

The package, by concern: ``url`` (URLs taken apart, Location resolved, credentials masked),
``proxy`` (proxy URLs, ``no_proxy``, the choice of proxy), ``framing`` (HTTP/1.1 bytes: head,
body framing, chunked decoding, the request), ``result`` (Hop, HttpResult), ``reading`` (one
response read off a stream within its bounds: head and body), ``client`` (one fetch's sockets:
connect, tunnel, TLS, a connection kept alive), ``redirects`` (the chain of hops).
Here: :func:`fetch`, and every name importable from ``netcheck.probes.http`` as before the split.
"""

from __future__ import annotations

import time
from typing import Any, Collection, Mapping, Optional, Union

from netcheck.lazy import asyncio
from netcheck.probes.http.client import HopRefusal, Resolver, Tunnelled, _Fetcher
from netcheck.probes.http.framing import (
    MAX_HEADER_BYTES,
    REDIRECT_STATUSES,
    ChunkedDecoder,
    Head,
    Headers,
    ProtocolError,
    body_framing,
    build_request,
    could_be_http,
    page_title,
    parse_head,
    parse_status_line,
    user_agent_for,
)
from netcheck.probes.http.proxy import (
    DEFAULT_PROXY_PORT,
    PROXY_DEFAULT_PORTS,
    SOCKS_SCHEMES,
    Proxy,
    ProxyChoice,
    bypass_proxy,
    choose_proxy,
    parse_proxy,
    proxy_arguments,
    proxy_for,
    proxy_variables,
)
from netcheck.probes.http.reading import BODY_SAMPLE_BYTES, MAX_INTERIM
from netcheck.probes.http.redirects import _follow
from netcheck.probes.http.result import Hop, HttpResult
from netcheck.probes.http.url import (
    DEFAULT_PORTS,
    MAX_URL_LENGTH,
    UrlError,
    UrlParts,
    mask_credentials,
    parts_of,
    request_path,
    resolve_location,
    split_url,
)

# Every public name the module had before it became a package.
__all__ = [
    "BODY_SAMPLE_BYTES", "ChunkedDecoder", "DEFAULT_PORTS", "DEFAULT_PROXY_PORT", "Head",
    "Headers", "Hop", "HopRefusal", "HttpResult", "MAX_BODY_BYTES", "MAX_HEADER_BYTES",
    "MAX_INTERIM", "MAX_REDIRECTS", "MAX_URL_LENGTH", "PROXY_DEFAULT_PORTS", "ProtocolError",
    "Proxy", "ProxyChoice", "REDIRECT_STATUSES", "Resolver", "SOCKS_SCHEMES", "Tunnelled",
    "UrlError", "UrlParts", "body_framing", "build_request", "bypass_proxy", "choose_proxy",
    "could_be_http", "fetch", "mask_credentials", "page_title", "parse_head", "parse_proxy",
    "parse_status_line", "parts_of", "proxy_arguments", "proxy_for", "proxy_variables",
    "request_path", "resolve_location", "split_url", "user_agent_for",
    # private, named by the exporter's documentation (``http._Fetcher.refusal``)
    "_Fetcher",
]


MAX_BODY_BYTES = 1 << 20  # read this much of a body, then stop: enough to judge, bounded memory
MAX_REDIRECTS = 10


async def fetch(target: Union[str, UrlParts, Any], *, address: Optional[str] = None,
                timeout: float = 2.0, deadline: Optional[float] = None,
                cafile: Optional[str] = None, cert: Optional[str] = None,
                key: Optional[str] = None, verify: bool = True,
                unverified_hosts: Collection[str] = (),
                user_agent: Optional[str] = None, request_id: Optional[str] = None,
                proxy: Union[None, str, Proxy] = None,
                env: Optional[Mapping[str, str]] = None,
                resolve: Optional[Resolver] = None, dns_ms: Optional[float] = None,
                mss: Optional[int] = None, max_redirects: int = MAX_REDIRECTS,
                max_header_bytes: int = MAX_HEADER_BYTES,
                max_body_bytes: int = MAX_BODY_BYTES,
                transfer_timeout: Optional[float] = None,
                hop_refusal: Optional[HopRefusal] = None) -> HttpResult:
    """GET ``target`` and follow its redirects; never raises for what the network does.

    target: a URL, :class:`UrlParts`, or netcheck's ``Target`` (http or https).
    address: connect the first hop here (already resolved); Host and SNI stay the name.
    timeout: bound of each phase (connect, TLS, first byte and headers, each body read).
    deadline: seconds for the whole fetch, every hop included (default 15).
    cafile/cert/key/verify: TLS as :func:`netcheck.probes.tls.client_context` makes it;
      ``unverified_hosts``: names whose certificate is not verified (one already judged
      elsewhere: the application is still looked at, as ``curl -k`` would).
    user_agent: default ``netcheck/VERSION (+request_id)``.
    proxy: a proxy for every hop (``no_proxy`` in ``env`` still exempts hosts, as for curl's
      ``-x``); otherwise ``env`` (e.g. ``os.environ``) is read per hop for http_proxy,
      https_proxy, all_proxy and no_proxy (:func:`choose_proxy`). Neither given: direct.
    resolve: async name -> addresses, for redirects to another host (default: getaddrinfo).
    dns_ms: the first hop's resolution time, when the caller resolved it.
    mss: TCP_MAXSEG set before connect(): the peer then sends segments no larger.
    transfer_timeout: bound of one body's transfer (default ``timeout``); reaching it is
      not a failure, the body is marked truncated ("time").
    hop_refusal: asked for every hop, the first included, before anything is sent to it
      (see :meth:`_Fetcher.refusal`); a refused hop ends the fetch with outcome
      ``not_allowed`` and the hops before it.
    """
    start = time.monotonic()
    ua = user_agent or user_agent_for(request_id)
    result, current, explicit = _first_hop(target, ua, proxy)
    if current is None:
        return result
    fetcher = _Fetcher(timeout=timeout, until=start + (15.0 if deadline is None else deadline),
                       cafile=cafile, cert=cert, key=key, verify=verify, user_agent=ua,
                       proxy=explicit, env=env, unverified_hosts=unverified_hosts,
                       resolve=resolve, mss=mss,
                       max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes,
                       transfer_timeout=timeout if transfer_timeout is None else transfer_timeout,
                       hop_refusal=hop_refusal)
    if address is not None:
        fetcher.known[current.host] = [address]
    await _run(fetcher, result, current, max_redirects, dns_ms, start)
    return result


def _first_hop(target: Union[str, UrlParts, Any], ua: str, proxy: Union[None, str, Proxy]
               ) -> tuple[HttpResult, Optional[UrlParts], Optional[Proxy]]:
    """The result to fill, the first hop and the proxy given; no hop when the target or the
    proxy cannot be used (the result says why)."""
    try:
        current = parts_of(target)
    except (UrlError, ValueError, AttributeError, TypeError) as exc:
        return (HttpResult(str(target)[:200], "error", f"bad URL: {exc}", user_agent=ua),
                None, None)
    result = HttpResult(current.url, user_agent=ua)
    try:
        explicit = parse_proxy(proxy, "--proxy") if isinstance(proxy, str) else proxy
    except UrlError as exc:
        result.outcome, result.detail = "proxy_failed", str(exc)
        return result, None, None
    return result, current, explicit


async def _run(fetcher: _Fetcher, result: HttpResult, current: UrlParts, max_redirects: int,
               dns_ms: Optional[float], start: float) -> None:
    """Follow the chain from ``current``; a bug in it becomes the result's error, never an
    exception (only a cancellation passes)."""
    seen = {current.url}
    try:
        await _follow(fetcher, result, current, seen, max_redirects, dns_ms)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug must not cost the report: say what happened
        result.outcome = "error"
        result.detail = f"{type(exc).__name__}: {exc}"
    finally:
        fetcher.close()
        result.elapsed_ms = (time.monotonic() - start) * 1000
    if result.hops and not result.proxy:
        result.proxy = next((h.proxy for h in result.hops if h.proxy), None)
