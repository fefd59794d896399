"""``transport.service``: with ``--scan``, nmap's identification of the service on the port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from netcheck import i18n
from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Layer, Result, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes import nmapscan, shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    shared = lazy("netcheck.probes.shared")


def _scan_asked(ctx: Context) -> Optional[str]:
    return None if ctx.options.scan else _("not asked (use --scan)")


def _scan_error(result: nmapscan.ServiceScan) -> str:
    """Why nmap gave no port line (``nmapscan.ServiceScan.error``), in words."""
    from netcheck.probes import nmapscan

    code, detail = result.error, result.error_detail
    if code == nmapscan.NMAP_MISSING:
        return _("nmap is not installed")
    if code == nmapscan.PYTHON_NMAP_MISSING:
        return _("python-nmap is not installed")
    if code == nmapscan.TIMED_OUT:
        return _("nmap did not finish within {seconds} s").format(
            seconds=f"{result.time_limit_s or 0:.1f}")
    if code == nmapscan.NMAP_FAILED:
        return _("nmap failed: {error}").format(error=detail)
    if code == nmapscan.NO_RESULT:
        host = result.address.split("%")[0]
        if detail is None:
            return _("nmap reported no result for {host}").format(host=host)
        return _("nmap reported no result for {host}: {errors}").format(host=host, errors=detail)
    return _("nmap gave no state for the port (host timeout?)")


@check("transport.service", Layer.TRANSPORT, requires=("transport.tcp",), applies=_scan_asked)
async def service_scan(ctx: Context) -> Result:
    """Service on the port identified by nmap.

    With ``--scan``: real nmap service/version detection on the open port (``-sV
    --version-light``, a SYN scan as root, a connect scan otherwise), its product, version
    and extra information shown as ``nmap -sS -A`` prints them. Bounded by the deadline.
    """
    from netcheck.probes import nmapscan

    assert ctx.target is not None
    if nmapscan.nmap_path() is None:
        return skipped(_("install nmap (Debian: apt install nmap) to identify the service"))
    # The run's own connects (shared, typed): no new probe, no reading of another's evidence.
    connects = await shared.tcp_all(ctx, await ctx.addresses(), ctx.target.port)
    opened = [r.address for r in connects if r.state == "open"]
    if not opened:
        return skipped(_("the port is not open: nothing to identify"))
    left = ctx.time_left() - 0.5
    if left < 1.5:
        return skipped(_("not enough time left before the deadline for nmap (use --deadline)"))
    result = await ctx.blocking(nmapscan.scan, opened[0], ctx.target.port,
                                ctx.facts.privileged, left)
    if result.error:
        with i18n.language("en"):  # evidence is never translated (netcheck.i18n)
            english = _scan_error(result)
        return skipped(_scan_error(result), **result.to_json(english))
    evidence = result.to_json()
    return passed(f"nmap: {' '.join(result.line.split())}", **evidence)
