"""The exporter's configuration: modules, the allow-list, and the targets it names.

::

    [exporter]
    allow = ["198.18.2.0/24", "www.lab.test", "*.lab.test"]  # --allow adds to it
    concurrency = 8          # diagnosis ladders at once; more wait (within their deadline)
                             # or get 503 (the exchanges are bounded by descriptors)
    deadline = 10            # seconds per probe, shortened to Prometheus' scrape timeout

    [targets]                # named here = allowed, even with no allow-list
    web = "https://www.lab.test/"
    ssh = { target = "198.18.2.10", port = 22, scheme = "tcp" }

    [modules.default]        # used when a request names no module
    timeout = 2

    [modules.connect]        # a light probe: the TCP connect alone
    only = ["transport.tcp"]

    [modules.diagnose]       # every scrape walks the whole ladder, even when all works
    ladder = "always"

    [modules.telnet_shut]
    scheme = "tcp"
    port = 23
    expect = "closed"

An exporter that probes whatever a URL names is an open relay for scans and SSRF, so a
target is probed only when the allow-list covers it or the config names it; with neither,
every probe is refused. The decision is made on the target as written, before anything is
sent: an address must fall in an allowed network, a name must be allowed by name
(``*.domain`` for its subdomains). A name is never resolved to see whether its address
would be allowed — that would already send a query, and the answer could change between
the check and the probe (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

from netcheck.batch.profile import OPTION_KEYS, build_target, check_option, unknown_key_message
from netcheck.defaults import EXPECT
from netcheck.fastprobe import LADDER_CHOICES
from netcheck.target import Target, TargetError, normalize_host

if TYPE_CHECKING:
    from netcheck.registry import Check

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
MODULE_KEYS = {**{k: v for k, v in OPTION_KEYS.items() if k != "target"},
               "only": "checks to run (as netcheck batch --only), e.g. [\"transport.tcp\"]",
               "ladder": "when the diagnosis ladder runs: \"on-failure\" (after an exchange "
                         "that fails or warns; the default) or \"always\""}
EXPORTER_KEYS = ("allow", "concurrency", "deadline")
DEFAULT_MODULE = "default"
DEFAULT_CONCURRENCY = 8
DEFAULT_DEADLINE = 10.0


class ConfigError(Exception):
    """The configuration cannot be used: one line saying where and why."""


@dataclass
class Module:
    """How to probe: the options a request's target gets (as a profile's [defaults])."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    only: tuple[str, ...] = ()
    checks: Optional[list[Check]] = None  # resolved from ``only`` once the registry is loaded

    @property
    def expect(self) -> str:
        return str(self.options.get("expect", EXPECT))

    @property
    def ladder(self) -> str:
        """``on-failure`` (the exchange first, the ladder when it fails or warns) or
        ``always``."""
        return str(self.options.get("ladder", "on-failure"))


@dataclass
class AllowList:
    """Networks and host names a request may name."""

    networks: list[Network] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    suffixes: list[str] = field(default_factory=list)  # from "*.domain": ".domain"

    def add(self, text: str) -> None:
        """Add one entry: an address, a CIDR, a host name or ``*.domain``; ValueError if bad."""
        text = text.strip()
        try:
            self.networks.append(ipaddress.ip_network(text, strict=False))
            return
        except ValueError:
            pass
        wildcard = text.startswith("*.")
        try:
            name = normalize_host(text[2:] if wildcard else text)
        except TargetError as exc:
            raise ValueError(f"allow entry {text[:60]!r}: {exc}") from None
        if wildcard:
            self.suffixes.append("." + name)
        else:
            self.names.add(name)

    def __bool__(self) -> bool:
        return bool(self.networks or self.names or self.suffixes)

    def covers(self, target: Target) -> bool:
        """True when the target's host, as written, is allowed."""
        return self.covers_host(target.host)

    def covers_host(self, host: str) -> bool:
        """An address in an allowed network, or a name allowed by name or ``*.domain``."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host in self.names or any(host.endswith(s) for s in self.suffixes)
        return any(ip.version == net.version and ip in net for net in self.networks)

    def describe(self) -> str:
        parts = [str(n) for n in self.networks] + sorted(self.names) + \
            ["*" + s for s in self.suffixes]
        return ", ".join(parts) if parts else "nothing"


@dataclass
class Config:
    """Everything ``netcheck serve`` runs with."""

    modules: dict[str, Module] = field(default_factory=dict)
    allow: AllowList = field(default_factory=AllowList)
    targets: dict[str, Target] = field(default_factory=dict)  # name -> target
    concurrency: int = DEFAULT_CONCURRENCY
    deadline: float = DEFAULT_DEADLINE
    source: str = "(no config)"

    def __post_init__(self) -> None:
        self.modules.setdefault(DEFAULT_MODULE, Module(DEFAULT_MODULE))

    def named(self, target: Target) -> bool:
        """True when the config names this very target: scheme, host, port and (http) path."""
        return self.names(target.scheme, target.host, target.port, target.path)

    def names(self, scheme: str, host: str, port: int, path: str) -> bool:
        """True when a [targets] entry is exactly this: a tcp:// entry allows no http://
        request to the same port, an http(s) entry no other path on the same server."""
        wanted = _match_key(scheme, host, port, path)
        return any(_match_key(t.scheme, t.host, t.port, t.path) == wanted
                   for t in self.targets.values())

    def why_refused(self, target: Target) -> Optional[str]:
        """None when the target may be probed, else the reason (for the 400 answer)."""
        if self.named(target) or (self.allow and self.allow.covers(target)):
            return None
        if self.allow:
            return f"target {target.host} is not in the allow-list ({self.allow.describe()})"
        return (f"target {target.scheme}://{target.host}:{target.port} is not named in the "
                "config, and no allow-list is set (--allow CIDR|HOST)")

    def hop_refusal(self, host: str, port: int, scheme: str, path: str) -> Optional[str]:
        """Why an HTTP hop (a redirect's Location) may not be requested, or None.

        The same rule as a request's target: the allow-list judges the host as written, a
        [targets] entry must match scheme, host, port and path. The probe asks again with
        each address a refused name resolves to (see ``http._Fetcher.refusal``).
        """
        if self.names(scheme, host, port, path) or (self.allow and
                                                     self.allow.covers_host(host)):
            return None
        if self.allow:
            return "outside the exporter's allow-list"
        return "not a target named in the exporter's config"

    def target_for(self, text: str, module: Module) -> Target:
        """The request's target with the module's options applied; TargetError if bad."""
        return build_target(text, module.options)


def _match_key(scheme: str, host: str, port: int, path: str) -> tuple[str, str, int, str]:
    """What makes two targets the same one: the path counts only for http(s), written as the
    probe sends it (so ``/a b`` and ``/a%20b`` are one path)."""
    from netcheck.probes.http import request_path

    return (scheme, host, port, request_path(path or "/") if scheme in ("http", "https") else "")


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9/3.10
        import tomli as tomllib
    return tomllib


def _table(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _module(name: str, table: Any, base: str, where: str) -> Module:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [modules.{name}] must be a table")
    module = Module(name)
    for key, value in table.items():
        if key == "only":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{where}: [modules.{name}] only must be a list of strings")
            module.only = tuple(items)
            continue
        if key == "ladder":
            if value not in LADDER_CHOICES:
                raise ConfigError(f"{where}: [modules.{name}] ladder must be "
                                  + " or ".join(f'"{c}"' for c in LADDER_CHOICES))
            module.options[key] = value
            continue
        if key not in MODULE_KEYS:
            raise ConfigError(f"{where}: [modules.{name}] {unknown_key_message(key, MODULE_KEYS)}")
        try:
            module.options[key] = check_option(key, value, base)
        except ValueError as exc:
            raise ConfigError(f"{where}: [modules.{name}] {exc}") from None
    return module


def _target(name: str, value: Any, base: str, where: str) -> Target:
    try:
        if isinstance(value, str):
            return build_target(value, {})
        if isinstance(value, dict) and "target" in value:
            checked = {k: check_option(k, v, base) for k, v in value.items()}
            return build_target(checked["target"], checked, explicit=checked)
    except (TargetError, ValueError) as exc:
        raise ConfigError(f"{where}: [targets] {name}: {exc}") from None
    raise ConfigError(f"{where}: [targets] {name}: a target is a string or a table with target")


def parse(text: str, source: str = "(config)", base: str = ".") -> Config:
    """Read a config from TOML text; ConfigError names the first problem."""
    try:
        doc = _toml().loads(text)
    except Exception as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for key in doc:
        if key not in ("exporter", "targets", "modules"):
            raise ConfigError(f"{source}: unknown table [{key}] (known: exporter, targets, "
                              "modules)")
    config = Config(source=source)
    exporter = _table(doc, "exporter", source)
    for key in exporter:
        if key not in EXPORTER_KEYS:
            raise ConfigError(f"{source}: [exporter] "
                              f"{unknown_key_message(key, EXPORTER_KEYS)}")
    allow = exporter.get("allow", [])
    if isinstance(allow, str):
        allow = [allow]
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError(f"{source}: [exporter] allow must be a list of strings")
    for entry in allow:
        try:
            config.allow.add(entry)
        except ValueError as exc:
            raise ConfigError(f"{source}: [exporter] {exc}") from None
    if "concurrency" in exporter:
        value = exporter["concurrency"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            raise ConfigError(f"{source}: [exporter] concurrency must be a number from 1 to 1024")
        config.concurrency = value
    if "deadline" in exporter:
        try:
            config.deadline = check_option("deadline", exporter["deadline"])
        except ValueError as exc:
            raise ConfigError(f"{source}: [exporter] {exc}") from None
    for name, value in _table(doc, "targets", source).items():
        config.targets[name] = _target(name, value, base, source)
    for name, table in _table(doc, "modules", source).items():
        config.modules[name] = _module(name, table, base, source)
    return config


def load(path: Optional[str]) -> Config:
    """Read the config file (or an empty config for None)."""
    import os

    from netcheck.untrusted import UntrustedTextError, check_toml, read_bounded

    if path is None:
        return Config()
    try:
        with open(path, encoding="utf-8") as fh:
            text = read_bounded(fh, path)  # refused past 1 MiB, never cut short silently
        # tomllib is quadratic in dotted-key parts and recursive in nesting: bound it first.
        check_toml(text, path)
    except UntrustedTextError as exc:
        raise ConfigError(str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    return parse(text, path, os.path.dirname(os.path.abspath(path)))


def resolve_checks(config: Config, checks: Iterable[Check]) -> None:
    """Give every module its checks (``only`` narrowed); ConfigError if ``only`` matches none."""
    from netcheck.batch.run import select_checks

    checks = list(checks)
    for module in config.modules.values():
        try:
            module.checks = select_checks(checks, module.only)
        except ValueError as exc:
            raise ConfigError(f"{config.source}: [modules.{module.name}] {exc}") from None
