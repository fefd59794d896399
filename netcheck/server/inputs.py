"""What ``netcheck server`` accepts: each value checked, one clear line when it is wrong.

Every value is checked here, not by argparse, so that bad input gives one clear line (or one
JSON document with ``mode: "server"``) and exit status 3, and nothing the user typed reaches a
command line unchecked: a unit name is held to systemd's grammar, a process name and a
request id to short plain words, the client to an IP address. Light on purpose (no runner,
no asyncio): bad input is refused before anything heavy is imported.
"""

from __future__ import annotations

import ipaddress
import os
import re

from netcheck.i18n import _

DEFAULT_SINCE = "1h"
MAX_SINCE_S = 366 * 86400
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{4,64}$")
_PROCESS = re.compile(r"^[A-Za-z0-9._+:@/-]{1,128}$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
PROTOCOLS = ("tcp", "udp")


class BadInput(ValueError):
    """A value ``netcheck server`` cannot use: one line for the user, exit status 3."""


def parse_port(text: str) -> int:
    """``--port``: a number from 1 to 65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise BadInput(_("--port {value} is not a number from 1 to 65535").format(
            value=repr(text[:20])))
    return int(text)


def parse_proto(text: str) -> str:
    """``--proto``: tcp or udp."""
    if text.lower() not in PROTOCOLS:
        raise BadInput(_("--proto {value}: tcp or udp").format(value=repr(text[:20])))
    return text.lower()


def parse_since(text: str) -> float:
    """``--since``: a duration like ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` or seconds."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not value or m is None or not any(m.groups()):
            raise BadInput(_("--since {value} is not a duration (e.g. 30s, 15m, 2h, 1d, "
                             "1h30m)").format(value=repr(text[:20])))
        w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = float(w * 604800 + d * 86400 + h * 3600 + mi * 60 + s)
    if not 0 < seconds <= MAX_SINCE_S:
        raise BadInput(_("--since {value} must be more than 0 s and at most 366 days").format(
            value=repr(text[:20])))
    return seconds


def parse_client(text: str) -> str:
    """``--client``: the client's IP address (as the server's logs and routes see it)."""
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise BadInput(_("--client {value} is not an IP address").format(
            value=repr(text[:40]))) from None
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def parse_request_id(text: str) -> str:
    """``--request-id``: the id netcheck diagnose prints (letters, digits, ``._-``)."""
    if not _REQUEST_ID.match(text):
        raise BadInput(_("--request-id {value}: 4 to 64 letters, digits, '.', '_' or '-' "
                         "(the id netcheck diagnose prints)").format(value=repr(text[:20])))
    return text


def parse_process(text: str) -> str:
    """``--process``: a program name (``nginx``) or path (``/usr/sbin/nginx``)."""
    if not _PROCESS.match(text) or text.startswith("-"):
        raise BadInput(_("--process {value}: a program name such as nginx or "
                         "/usr/sbin/nginx (letters, digits, '._+:@/-')").format(
            value=repr(text[:20])))
    return text


def parse_service(text: str) -> str:
    """``--service``: a systemd unit name, checked against systemd's grammar."""
    from netcheck.probes.systemd import UnitNameError, normalise_unit

    try:
        return normalise_unit(text)
    except UnitNameError as exc:
        raise BadInput(f"--service: {exc}") from None


def parse_log(text: str) -> str:
    """``--log``: ``journal``, or a log file that exists and is a file (read or not)."""
    if text == "journal":
        return text
    shown = text if len(text) <= 80 else text[:77] + "..."
    if not text or len(text) > 4096 or "\0" in text:
        raise BadInput(_("--log: give a log file or 'journal'"))
    if not os.path.exists(text):
        raise BadInput(_("--log {value}: no such file").format(value=repr(shown)))
    if os.path.isdir(text):
        raise BadInput(_("--log {value} is a directory: give the access log inside it").format(
            value=repr(shown)))
    if not os.path.isfile(text) and not os.path.islink(text):
        raise BadInput(_("--log {value} is not a regular file").format(value=repr(shown)))
    from netcheck.probes.logs import sniff_binary

    why = sniff_binary(text)
    if why:
        raise BadInput(f"--log {shown!r} {why}")
    return text
