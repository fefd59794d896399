"""The chain of hops: each request made, its redirect followed (or refused: another
scheme, a loop, too many), and the final hop's facts lifted onto the :class:`HttpResult`.
"""

from __future__ import annotations

import time
from typing import Optional

from netcheck.probes.banner import classify, first_line
from netcheck.probes.http.client import _Fail, _Fetcher, _ProxyRefused
from netcheck.probes.http.framing import REDIRECT_STATUSES, page_title
from netcheck.probes.http.result import Hop, HttpResult
from netcheck.probes.http.url import DEFAULT_PORTS, UrlError, UrlParts, resolve_location, split_url
from netcheck.redact import mask_secrets, shown


async def _follow(fetcher: _Fetcher, result: HttpResult, current: UrlParts, seen: set[str],
                  max_redirects: int, dns_ms: Optional[float]) -> None:
    for n in range(max_redirects + 1):
        hop = Hop(current.url)
        if n == 0 and dns_ms is not None:
            hop.dns_ms = dns_ms
        refusal = await fetcher.refusal(current, hop)
        if refusal is not None:
            _refuse(result, current, refusal)
            return
        result.hops.append(hop)
        t0 = time.monotonic()
        overhead = fetcher.overhead
        try:
            head, sample = await fetcher.exchange(current, hop)
        except _ProxyRefused as refused:
            hop.total_ms = fetcher.ms_since(t0, overhead)
            _finish(result, hop)
            result.outcome = "ok"
            result.detail = f"the proxy {hop.proxy} answered CONNECT with {refused.head.status}"
            return
        except _Fail as fail:
            hop.total_ms = fetcher.ms_since(t0, overhead)
            _failed(result, hop, fail)
            return
        hop.total_ms = fetcher.ms_since(t0, overhead)
        hop.sample = sample[:512]
        hop.title = page_title(sample) if head.status >= 400 else None
        location = head.headers.get("Location")
        if head.status in REDIRECT_STATUSES and location:
            following = _redirect(result, hop, current, location, seen, max_redirects,
                                  last=n == max_redirects)
            if following is None:
                return
            seen.add(following.url)
            current = following
            continue
        _finish(result, hop)
        result.outcome = "body_stall" if hop.truncated == "stall" else "ok"
        if hop.truncated == "stall":
            result.detail = (f"the body stalled after {hop.body_bytes} bytes"
                             + (f" of {hop.content_length}" if hop.content_length else ""))
        return


def _failed(result: HttpResult, hop: Hop, fail: _Fail) -> None:
    """End the fetch at a hop that failed: its outcome, and what little came back."""
    hop.error = fail.detail
    result.outcome, result.detail = fail.outcome, fail.detail
    result.bytes_received = hop.bytes_received
    if fail.first:
        result.first_line = first_line(fail.first)
        result.heard = classify(fail.first)
    if hop.status is not None:
        _finish(result, hop)


def _redirect(result: HttpResult, hop: Hop, current: UrlParts, location: str, seen: set[str],
              max_redirects: int, *, last: bool) -> Optional[UrlParts]:
    """Where the redirect of ``hop`` leads, or None when the chain ends there (the outcome
    says why: another scheme, a bad Location, a loop, or one redirect too many)."""
    # Masked before it is cut: a cut through a password would hide the '@' that shows where
    # the password ends.
    hop.location = first_line(mask_secrets(location).encode("latin-1", "replace"), 300)
    target_url = resolve_location(current, location)
    hop.next_url = shown(target_url, 300)
    scheme = target_url.split(":", 1)[0].lower() if ":" in target_url else ""
    if scheme not in DEFAULT_PORTS:
        _finish(result, hop)
        result.outcome = "redirect_refused"
        result.detail = (f"redirect to {hop.next_url}: netcheck follows only http and "
                         "https redirects")
        return None
    try:
        following = split_url(target_url)
    except UrlError as exc:
        _finish(result, hop)
        result.outcome = "redirect_refused"
        result.detail = f"bad Location: {shown(str(exc))}"
        return None
    if following.scheme != current.scheme:
        hop.scheme_change = f"{current.scheme}->{following.scheme}"
    if following.url in seen:
        _finish(result, hop)
        result.outcome = "redirect_loop"
        result.detail = f"{following.url} was already visited: the redirects loop"
        return None
    if last:
        _finish(result, hop)
        result.outcome = "too_many_redirects"
        result.detail = f"more than {max_redirects} redirects"
        return None
    return following


def _refuse(result: HttpResult, parts: UrlParts, reason: str) -> None:
    """End the fetch before ``parts``: the hops so far are the answer, the refusal the detail."""
    where = shown(parts.url, 300)
    if result.hops:
        _finish(result, result.hops[-1])
        result.detail = f"redirect to {where} refused: {shown(reason)}"
    else:
        result.detail = f"request to {where} refused: {shown(reason)}"
    result.outcome = "not_allowed"


def _finish(result: HttpResult, hop: Hop) -> None:
    """The final hop's facts, lifted onto the result."""
    result.status, result.reason = hop.status, hop.reason
    result.final_url = hop.url
    result.size = hop.body_bytes
    result.truncated = hop.truncated is not None
    result.truncated_reason = hop.truncated
    result.server = hop.server
    result.bytes_received = hop.bytes_received
