"""Property tests for the TOML profile loader: whatever the file, a Profile or a ProfileError.

Never another exception (a RecursionError from tomllib, an IndexError in the line scanner),
never a hang, and whatever comes out is fit to print: no control character, no password.
The texts mix TOML's syntax with hostile shapes (long dotted keys, deep nesting, long lines)
at sizes around the bounds, so both sides of every bound are reached.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netcheck.batch import profile as profiles

# No example database: the suite must not write files into the repository.
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_SYNTAX = st.sampled_from(["[", "]", "[[", "]]", "{", "}", "=", ",", ".", "#", '"', "'", '"""',
                           "'''", "\\", "\\u", "\n", "\r\n", "\r", " ", "\t", "\x1b]0;x\x07",
                           "\x00", "\u2028", "\u202e", "ü"])
_WORDS = st.sampled_from(["defaults", "target", "port", "scheme", "timeout", "expect", "closed",
                          "cafile", "g", "a", "1", "99999", "1.5", "true", "[]", "{}",
                          '"tcp://198.18.2.10:22"', '"https://ann:hunter2@198.18.2.10/"',
                          '"ann:hunter2@198.18.2.10:99999"', "1979-05-27T07:32:00Z"])
# Hostile shapes, at sizes on both sides of the bounds (32 parts, 32 levels, 16 KiB lines).
_SHAPES = st.one_of(
    st.integers(1, 200).map(lambda n: ".".join(["k"] * n) + ' = "198.18.2.10"\n'),
    st.integers(1, 200).map(lambda n: "[" + ".".join(["k"] * n) + "]\n"),
    st.integers(1, 300).map(lambda n: "x = " + "[" * n + "]" * n + "\n"),
    st.integers(1, 300).map(lambda n: "x = " + "{a=" * n + "1" + "}" * n + "\n"),
    st.integers(1, 40_000).map(lambda n: "x = [" + "1," * (n // 2) + "]\n"),
    st.integers(1, 300).map(lambda n: 'x = """' + '\\"' * n + "\n" * (n % 5)),
)
_PIECES = st.lists(st.one_of(_SYNTAX, _WORDS, _SHAPES, st.text(max_size=5)),
                   max_size=25).map("".join)
ANY_PROFILE = st.one_of(st.text(max_size=400), _PIECES)

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_DIR = tempfile.TemporaryDirectory(prefix="netcheck-fuzz-")


def _load(text: str) -> None:
    path = Path(_DIR.name) / "p.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass", newline="")
    started = time.monotonic()
    try:
        profile = profiles.load(str(path))
    except profiles.ProfileError as exc:
        message = str(exc)
        assert message.startswith(str(path)), message
        assert not _CONTROL.search(message), repr(message)
        return
    finally:
        # Generous: the bounds keep any profile this size under a second; the unbounded
        # loader took minutes on some of these shapes.
        assert time.monotonic() - started < 10
    for entry in profile.entries:
        for text_out in (entry.name, entry.group, entry.text, entry.problem or ""):
            assert not _CONTROL.search(text_out), repr(text_out)
            assert "hunter2" not in text_out, text_out
    for line in profile.problem_lines():
        assert "hunter2" not in line and not _CONTROL.search(line), line


@FUZZ
@given(ANY_PROFILE)
@example("x = " + "[" * 2000)
@example(".".join(["a"] * 5000) + " = 1")
@example("[g]\n\"\x1b]0;t\x07\" = \"198.18.2.10:99999\"")
@example('a = """\\')
@example("[[g]]\n[g]\nx.y = 1\n")
def test_any_text_gives_a_profile_or_one_clear_error(text: str) -> None:
    _load(text)


@FUZZ
@given(st.lists(st.one_of(_SHAPES, _WORDS.map(lambda w: f"n = {w}\n"),
                          st.just("[g]\n")), max_size=10).map("".join))
def test_hostile_shapes_give_a_profile_or_one_clear_error(text: str) -> None:
    _load(text)
