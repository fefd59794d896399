"""netcheck.redact: what outside text may look like once printed, one row per case."""

from __future__ import annotations

import time

import pytest

from netcheck.redact import mask_secrets, mask_value, nagios_text, printable, shown


@pytest.mark.parametrize("text, masked", [
    # URL passwords, holding the characters that end a naive parse.
    ("https://ann:hunter2@198.18.2.10/", "https://ann:***@198.18.2.10/"),
    ("https://ann:s3cr@t@www.lab.test/", "https://ann:***@www.lab.test/"),
    ("https://ann:p:a:ss@www.lab.test:8443/x?y=1", "https://ann:***@www.lab.test:8443/x?y=1"),
    ("https://ann:@:@:@www.lab.test/", "https://ann:***@www.lab.test/"),
    ("https://:hunter2@www.lab.test/", "https://:***@www.lab.test/"),
    ("https://ann:pw%40x@www.lab.test", "https://ann:***@www.lab.test"),
    ("HTTPS://ann:pw@www.lab.test", "HTTPS://ann:***@www.lab.test"),
    ("ftp://ann:pw@[2001:db8::1]:21/", "ftp://ann:***@[2001:db8::1]:21/"),
    # Inside free text, quoted, after '=' and several in one line.
    ("see https://ann:pw@h/ and http://bob:pw2@g/ now",
     "see https://ann:***@h/ and http://bob:***@g/ now"),
    ("Location: 'https://ann:pw@www.lab.test/'", "Location: 'https://ann:***@www.lab.test/'"),
    ("url=https://ann:pw@h/", "url=https://ann:***@h/"),
    # A scheme-relative redirect (Location: //user:pw@host/).
    ("//ann:hunter2@www.lab.test/next", "//ann:***@www.lab.test/next"),
    # Secret-named parameters, in a query and in text; prefixed names too.
    ("https://www.lab.test/?token=abc&x=1", "https://www.lab.test/?token=***&x=1"),
    ("https://www.lab.test/?password=abc#top", "https://www.lab.test/?password=***#top"),
    ("https://www.lab.test/?apikey=1&secret=2", "https://www.lab.test/?apikey=***&secret=***"),
    ("https://www.lab.test/?api-key=1", "https://www.lab.test/?api-key=***"),
    ("PASSWORD=abc", "PASSWORD=***"),
    ("passwd=x pwd=y passphrase=z", "passwd=*** pwd=*** passphrase=***"),
    ("?client_secret=abc&oauth_token=def", "?client_secret=***&oauth_token=***"),
    ("access_token=abc", "access_token=***"),
    ("auth=Basic", "auth=***"),
    # A bare user:password@host as typed into a profile, alone or in a message.
    ("ann:hunter2@www.lab.test", "ann:***@www.lab.test"),
    ("ann:p@ss@www.lab.test:22", "ann:***@www.lab.test:22"),
    ("ann:pw@[2001:db8::1]:22", "ann:***@[2001:db8::1]:22"),
    ("line 3: port out of range in ann:hunter2@www.lab.test:99999",
     "line 3: port out of range in ann:***@www.lab.test:99999"),
])
def test_secrets_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize("text", [
    "https://www.lab.test/path?q=1#frag",
    "http://[2001:db8::10]:80/",
    "ssh://git@www.lab.test/repo",        # a user without a password is no secret
    "https://ann@www.lab.test/",
    "mail ann@lab.test about it",
    "ann@lab.test",
    "mailto:ann@lab.test",
    "author=bob tokens=3 passwords=none",  # names that only contain a secret's name
    "198.18.2.10:443",
    "2001:db8::1",
    "www.lab.test:22",
    "a/b:c@d",                             # a path, not credentials
    "",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_secrets(text) == text


def test_masking_is_idempotent() -> None:
    once = mask_secrets("https://ann:pw@h/?token=x ann:pw@g")
    assert mask_secrets(once) == once


def test_mask_value_masks_every_string_in_a_json_value() -> None:
    value = {"location": "https://ann:pw@h/", "chain": ["ann:pw@g", 3, None, True],
             "https://bob:pw@k/": {"n": 1.5}}
    assert mask_value(value) == {"location": "https://ann:***@h/",
                                 "chain": ["ann:***@g", 3, None, True],
                                 "https://bob:***@k/": {"n": 1.5}}


@pytest.mark.parametrize("text, one_line, keep_lines", [
    ("a\x1b[31mred", "a\\x1b[31mred", "a\\x1b[31mred"),                  # CSI colour
    ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07", "\\x1b]0;owned\\x07"),   # OSC 0 window title
    ("a\nb", "a\\x0ab", "a\nb"),
    ("a\r\nb", "a\\x0d\\x0ab", "a\\x0d\nb"),                            # \r never kept
    ("tab\there", "tab\\x09here", "tab\\x09here"),
    ("nul\x00", "nul\\x00", "nul\\x00"),
    ("x\x7fy", "x\\x7fy", "x\\x7fy"),                                   # DEL
    ("c1\x9bz", "c1\\x9bz", "c1\\x9bz"),                                # 8-bit CSI
    ("n\x85l", "n\\x85l", "n\\x85l"),                                   # NEL
    ("\u202eevil", "\\u202eevil", "\\u202eevil"),                       # RLO
    ("\u2066iso\u2069", "\\u2066iso\\u2069", "\\u2066iso\\u2069"),      # LRI ... PDI
    ("\u200fmark\u061c", "\\u200fmark\\u061c", "\\u200fmark\\u061c"),
    ("line\u2028sep", "line\\u2028sep", "line\\u2028sep"),
    ("bad\udcffbyte", "bad\\udcffbyte", "bad\\udcffbyte"),              # surrogateescape
    ("café ✔ 日本", "café ✔ 日本", "café ✔ 日本"),                       # printable stays
    ("", "", ""),
])
def test_printable_escapes_controls(text: str, one_line: str, keep_lines: str) -> None:
    assert printable(text) == one_line
    assert printable(text, keep_newlines=True) == keep_lines
    # What comes out can be written to any UTF-8 terminal or log.
    printable(text).encode("utf-8")


def test_shown_masks_escapes_and_cuts() -> None:
    assert shown("https://ann:pw@h/\x1b[2J") == "https://ann:***@h/\\x1b[2J"
    assert shown("abcdefghij", limit=8) == "abcde..."
    assert len(shown("abcdefghij", limit=2)) == 2
    assert shown("short", limit=80) == "short"


@pytest.mark.parametrize("text, line", [
    ("TCP_REFUSED: a | b", "TCP_REFUSED: a / b"),
    ("first\nCRITICAL - forged", "first\\x0aCRITICAL - forged"),
    ("\x1b]0;t\x07 ann:pw@h", "\\x1b]0;t\\x07 ann:***@h"),
])
def test_nagios_text_is_one_line_without_pipe(text: str, line: str) -> None:
    assert nagios_text(text) == line


def test_long_hostile_text_is_linear() -> None:
    # Unbounded, the scheme pattern rescanned "a.a.a..." from every word boundary: 40 KB took
    # a second and a megabyte minutes.
    text = "a." * 100_000 + "a-" * 100_000 + "a:b@" * 50_000
    start = time.monotonic()
    mask_secrets(text)
    shown(text)
    assert time.monotonic() - start < 2.0
