"""TARGET parsing: every form of the contract, IDN and IPv6 normalisation, ports, masked
credentials, and the bad targets that must be refused with one clear line."""

from __future__ import annotations

import ipaddress
import json

import pytest

from netcheck.target import DEFAULT_PORTS, Target, TargetError, parse_target

SCHEME_PORTS = {
    "http": 80,
    "https": 443,
    "smtp": 25,
    "submission": 587,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
    "ssh": 22,
    "dns": 53,
}

BAD_TARGETS = {
    "empty": "",
    "only spaces": "   ",
    "inner space": "www example.com",
    "port too big": "host:99999",
    "unclosed bracket": "http://[::1",
    "300-character label": "a" * 300,
    "label of 64": "b" * 64 + ".example",
    "name of 254": ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]),
    "shell rm": "a;rm -rf /",
    "shell subst": "$(id)",
    "shell backticks": "`id`",
    "shell pipe": "a|b",
    "shell and": "a&b",
    "shell semicolon": "a;b",
    "nul": "host\x00",
    "bare nul": "\x00",
    "newline": "\n",
    "newline inside": "host\nevil",
    "ansi escape": "\x1b[31m",
    "ansi escape in host": "h\x1b[31mx",
    "delete char": "h\x7fx",
    "unknown scheme": "ftp://x",
    "tcp without port": "tcp://host",
    "no host in url": "http://",
    "no host before path": "https:///path",
    "bad ipv4": "256.1.1.1",
    "short ipv4": "1.2.3",
    "bad ipv6": "2001:db8::g",
    "text after bracket": "[::1]x",
    "port 0": "host:0",
    "port empty": "host:",
    "port letters": "host:abc",
    "empty label": "a..b",
    "leading hyphen": "-a.example",
    "path without scheme": "host/path",
    "user without scheme": "user@host",
}


def assert_one_clear_line(message: str) -> None:
    """A TargetError message is shown to a person: one short printable line."""
    assert message, "the message is empty"
    assert "\n" not in message and "\r" not in message, repr(message)
    assert message.isprintable(), repr(message)
    assert len(message) < 400, len(message)


# -- the forms of the contract ----------------------------------------------------------

def test_bare_host_means_https_on_443() -> None:
    t = parse_target("www.example.com")
    assert (t.scheme, t.host, t.port, t.path) == ("https", "www.example.com", 443, "/")
    assert t.input == "www.example.com"
    assert t.is_name and t.ip is None


def test_host_and_port_is_tcp_to_that_port() -> None:
    t = parse_target("www.example.com:8080")
    assert (t.scheme, t.host, t.port) == ("tcp", "www.example.com", 8080)


def test_ipv4_literal() -> None:
    t = parse_target("198.18.0.7")
    assert (t.scheme, t.host, t.port) == ("https", "198.18.0.7", 443)
    assert t.ip == ipaddress.IPv4Address("198.18.0.7")
    assert not t.is_name


def test_ipv4_literal_with_port() -> None:
    t = parse_target("198.18.0.7:22")
    assert (t.host, t.port) == ("198.18.0.7", 22)


def test_ipv6_literal_is_normalised() -> None:
    t = parse_target("2001:0DB8:0000:0000:0000:0000:0000:0007")
    assert t.host == "2001:db8::7"
    assert t.port == 443
    assert t.ip == ipaddress.IPv6Address("2001:db8::7")


def test_ipv6_literal_in_brackets_without_port() -> None:
    t = parse_target("[2001:db8::7]")
    assert (t.host, t.port) == ("2001:db8::7", 443)


def test_bracketed_ipv6_with_port() -> None:
    t = parse_target("[2001:DB8:0::7]:22")
    assert (t.scheme, t.host, t.port) == ("tcp", "2001:db8::7", 22)


def test_ipv6_url_shows_brackets() -> None:
    t = parse_target("[2001:db8::7]:22")
    assert t.url == "tcp://[2001:db8::7]:22"


def test_loopback_ipv6() -> None:
    assert parse_target("::1").host == "::1"


@pytest.mark.parametrize(("scheme", "port"), sorted(SCHEME_PORTS.items()))
def test_each_scheme_has_its_default_port(scheme: str, port: int) -> None:
    t = parse_target(f"{scheme}://mail.example.com")
    assert (t.scheme, t.host, t.port) == (scheme, "mail.example.com", port)


@pytest.mark.parametrize("scheme", sorted(DEFAULT_PORTS))
def test_each_scheme_takes_an_explicit_port(scheme: str) -> None:
    t = parse_target(f"{scheme}://server.example.com:2525/")
    assert (t.scheme, t.port) == (scheme, 2525)


def test_contract_schemes_are_all_known() -> None:
    assert set(DEFAULT_PORTS) == set(SCHEME_PORTS) | {"tcp"}


def test_tcp_url_with_port() -> None:
    t = parse_target("tcp://db.example.com:5432")
    assert (t.scheme, t.host, t.port) == ("tcp", "db.example.com", 5432)


def test_url_keeps_the_path() -> None:
    t = parse_target("https://www.example.com:8443/health/live")
    assert (t.host, t.port, t.path) == ("www.example.com", 8443, "/health/live")
    assert t.url == "https://www.example.com:8443/health/live"


def test_url_without_path_gets_slash() -> None:
    assert parse_target("http://www.example.com").path == "/"


def test_scheme_and_host_are_case_insensitive() -> None:
    t = parse_target("HTTP://WWW.Example.COM/")
    assert (t.scheme, t.host) == ("http", "www.example.com")


def test_trailing_dot_is_dropped() -> None:
    assert parse_target("www.example.com.").host == "www.example.com"


def test_ipv6_in_url() -> None:
    t = parse_target("https://[2001:db8::0:7]:8443/")
    assert (t.host, t.port) == ("2001:db8::7", 8443)


# -- --port ---------------------------------------------------------------------------

def test_port_option_on_bare_host() -> None:
    assert parse_target("www.example.com", port=8443).port == 8443


def test_port_option_overrides_port_in_target() -> None:
    t = parse_target("www.example.com:80", port=8080)
    assert t.port == 8080


def test_port_option_overrides_url_port_and_keeps_scheme() -> None:
    t = parse_target("http://www.example.com:81/", port=8080)
    assert (t.scheme, t.port) == ("http", 8080)


def test_port_option_overrides_scheme_default() -> None:
    assert parse_target("smtp://mail.example.com", port=2525).port == 2525


def test_port_option_completes_tcp_url() -> None:
    assert parse_target("tcp://db.example.com", port=5432).port == 5432


def test_port_option_on_bracketed_ipv6() -> None:
    t = parse_target("[::1]:22", port=2222)
    assert (t.host, t.port) == ("::1", 2222)


@pytest.mark.parametrize("port", [0, -1, 65536, 99999])
def test_port_option_out_of_range_is_rejected(port: int) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target("www.example.com", port=port)
    assert_one_clear_line(str(exc.value))


# -- IDN ------------------------------------------------------------------------------

def test_idn_name_becomes_punycode() -> None:
    t = parse_target("bücher.example")
    assert t.host == "xn--bcher-kva.example"
    assert t.host.isascii()
    assert t.display_host == "bücher.example"


def test_idn_name_in_capitals_becomes_the_same_punycode() -> None:
    assert parse_target("BÜCHER.example").host == "xn--bcher-kva.example"


def test_idn_name_in_url_with_port() -> None:
    t = parse_target("http://bücher.example:8080/")
    assert (t.host, t.port) == ("xn--bcher-kva.example", 8080)


def test_punycode_name_is_kept() -> None:
    assert parse_target("xn--bcher-kva.example").host == "xn--bcher-kva.example"


# -- ports ----------------------------------------------------------------------------

@pytest.mark.parametrize("port", [1, 22, 443, 65535])
def test_ports_in_range_are_accepted(port: int) -> None:
    assert parse_target(f"host.example:{port}").port == port
    assert parse_target(f"http://host.example:{port}/").port == port
    assert parse_target(f"[2001:db8::1]:{port}").port == port


@pytest.mark.parametrize("port", ["0", "65536", "99999", "abc", "", "-1", "+80", "8o", "٨٠", "²"])
def test_ports_out_of_range_or_not_digits_are_rejected(port: str) -> None:
    for text in (f"host.example:{port}", f"http://host.example:{port}/", f"[::1]:{port}"):
        with pytest.raises(TargetError) as exc:
            parse_target(text)
        assert_one_clear_line(str(exc.value))


def test_error_for_a_very_long_port_is_short() -> None:
    with pytest.raises(TargetError) as exc:
        parse_target("host:" + "9" * 2000)
    assert_one_clear_line(str(exc.value))


# -- host name lengths -------------------------------------------------------------------

def test_label_of_63_is_accepted() -> None:
    name = "a" * 63 + ".example"
    assert parse_target(name).host == name


def test_label_of_64_is_rejected() -> None:
    with pytest.raises(TargetError, match="63"):
        parse_target("a" * 64 + ".example")


def test_name_of_253_is_accepted() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    assert parse_target(name).host == name


def test_name_of_254_is_rejected() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])
    assert len(name) == 254
    with pytest.raises(TargetError, match="253"):
        parse_target(name)


# -- credentials -----------------------------------------------------------------------

def test_password_is_masked_everywhere() -> None:
    t = parse_target("http://user:secret@www.example.com/")
    assert t.input == "http://user:***@www.example.com/"
    assert t.user == "user"
    assert t.has_password
    assert t.host == "www.example.com"
    for shown in (repr(t), str(t), t.input, t.url, json.dumps(t.to_json(["198.18.0.1"]))):
        assert "secret" not in shown
    assert "***" in t.url


def test_user_without_password_is_kept() -> None:
    t = parse_target("ssh://admin@host.example")
    assert (t.user, t.has_password, t.port) == ("admin", False, 22)
    assert t.url == "ssh://admin@host.example:22"


def test_empty_password_is_still_masked() -> None:
    t = parse_target("http://user:@host.example/")
    assert t.has_password
    assert t.input == "http://user:***@host.example/"


@pytest.mark.parametrize("text", [
    "http://user:secret@host.example:99999/",
    "http://user:secret@host.example:abc/",
    "http://user:secret@host.example:0/",
    "http://user:secret@bad!host/",
    "http://user:secret@[::1",
    "http://user:secret@[::1]x/",
    "http://user:secret@/",
    "tcp://user:secret@host.example",
    "ftp://user:secret@host.example/",
    "http://user:secret@a..b/",
    "http://user:secret@" + "a" * 300 + "/",
    "http://user:secret@host example/",
])
def test_password_never_appears_in_an_error(text: str) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target(text)
    assert "secret" not in str(exc.value)
    assert "secret" not in repr(exc.value)
    assert_one_clear_line(str(exc.value))


def test_password_containing_at_sign_is_masked_whole() -> None:
    t = parse_target("http://user:p@ss-secret@www.example.com/")
    assert t.host == "www.example.com"
    for shown in (repr(t), t.input, t.url, json.dumps(t.to_json([]))):
        assert "ss-secret" not in shown


# -- bad targets ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", list(BAD_TARGETS.values()), ids=list(BAD_TARGETS))
def test_bad_target_is_rejected_with_one_line(text: str) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target(text)
    assert_one_clear_line(str(exc.value))


@pytest.mark.parametrize("text", ["\x1b[31mred", "host\x00", "h\x1b]0;title\x07"])
def test_error_never_echoes_control_characters(text: str) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target(text)
    assert "\x1b" not in str(exc.value) and "\x00" not in str(exc.value)


def test_target_error_is_a_value_error() -> None:
    # Callers that catch ValueError (argparse types, the batch reader) still catch it.
    assert issubclass(TargetError, ValueError)


def test_target_is_immutable() -> None:
    t = parse_target("www.example.com")
    assert isinstance(t, Target)
    with pytest.raises(AttributeError):
        t.port = 80  # type: ignore[misc]
