"""Untrusted TOML is measured before tomllib sees it: the attacks are refused fast, small.

tomllib spends memory and time quadratic in the parts of a dotted key or header (one 40 KB
key of 20 000 parts: 1.6 GB and 14 s), recurses once per nesting level, and walks long lines
in Python; before netcheck.untrusted a batch profile or an exporter config fed it all of
that. Each attack below runs in a child process whose address space is capped at 1 GiB (so
the unbounded parser fails instead of swapping), and must be refused with its line number in
well under 2 s and 100 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netcheck.untrusted import Limits, UntrustedTextError, bounded_lines, check_toml
from tests.schema import validate_report

ROOT = Path(__file__).resolve().parents[2]

# Loads the file given in argv[2] with the loader named in argv[1], capped at 1 GiB, and
# reports what it cost: time, growth of the peak resident size, and the error if refused.
MEASURE = """
import json, resource, sys, time


def hwm_kb():  # this image's peak; ru_maxrss would carry the forking parent's across exec
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))


resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from netcheck.batch import profile
from netcheck.exporter import config
before = hwm_kb()
started = time.monotonic()
try:
    if sys.argv[1] == "profile":
        profile.load(sys.argv[2])
    else:
        config.load(sys.argv[2])
    error = None
except (profile.ProfileError, config.ConfigError) as exc:
    error = str(exc)
print(json.dumps({"seconds": time.monotonic() - started, "error": error,
                  "grown_kb": hwm_kb() - before}))
"""


def measure(loader: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", MEASURE, loader, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def dotted(parts: int) -> str:
    return ".".join(["a"] * parts)


# (what, the profile text, the line refused, what the refusal says)
PROFILE_ATTACKS = [
    ("one dotted key of 20 000 parts (40 KB)",
     f'[g]\n{dotted(20_000)} = "198.18.2.10"\n', 2, "line longer than 16 KiB"),
    ("dotted keys of 8000 parts, each on a line under the line bound",
     "[g]\n" + f'{dotted(8000)} = "198.18.2.10"\n' * 6, 2, "more than 32 parts"),
    ("table headers of 8000 parts",
     f"[{dotted(8000)}]\n" * 100, 1, "more than 32 parts"),
    ("one line of 8 MiB",
     "[g]\nx = [" + "1," * (4 << 20) + "]\n", 2, "line longer than 16 KiB"),
    ("arrays nested 5000 deep (tomllib recurses)",
     "[g]\nx = " + "[" * 5000 + "]" * 5000 + "\n", 2, "nested more than 32 deep"),
]


@pytest.mark.parametrize("what,text,line,reason", PROFILE_ATTACKS,
                         ids=[a[0] for a in PROFILE_ATTACKS])
def test_a_hostile_profile_is_refused_fast_and_small(tmp_path: Path, what: str, text: str,
                                                     line: int, reason: str) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text(text)
    got = measure("profile", path)
    assert got["error"] is not None, f"{what}: loaded instead of refused ({got})"
    assert got["error"].startswith(f"{path}:{line}: "), got
    assert reason in got["error"], got
    assert got["seconds"] < 2, got
    assert got["grown_kb"] < 100 * 1024, got


def test_a_hostile_exporter_config_is_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "exporter.toml"
    path.write_text('[exporter]\nallow = ["198.18.2.0/24"]\n[targets]\n' + "".join(
        f'{dotted(8000)}.k{i} = "198.18.2.10"\n' for i in range(8)))
    got = measure("config", path)
    assert got["error"] == f"{path}:4: a dotted key or table header with more than 32 parts"
    assert got["seconds"] < 2 and got["grown_kb"] < 100 * 1024, got


def test_an_exporter_config_past_1_mib_is_refused_not_cut(tmp_path: Path) -> None:
    from netcheck.exporter import config

    path = tmp_path / "exporter.toml"
    # Cut at 1 MiB, as before, the file would lose its last target without a word.
    path.write_text("[targets]\n" + "".join(f'h{i} = "198.18.{i // 250 % 250}.{i % 250 + 1}"\n'
                                            for i in range(50_000)))
    assert path.stat().st_size > 1 << 20
    with pytest.raises(config.ConfigError, match="larger than 1 MiB"):
        config.load(str(path))


def test_a_refused_profile_is_one_json_error_document_and_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text(f'[g]\nok = "198.18.2.10"\n{dotted(8000)} = "198.18.2.10"\n')
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "from netcheck.cli import run; sys.exit(run(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "batch", str(path), "--format", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "netcheck-batch/1" and doc["summary"]["unknown"] == 1
    (result,) = doc["results"]
    validate_report(result)
    assert result["error"] == f"{path}:3: a dotted key or table header with more than 32 parts"
    assert f"{path}:3: a dotted key" in proc.stderr


# -- the scanner itself ---------------------------------------------------------------------

SMALL = Limits(max_bytes=4096, max_line=200, max_statement=400, max_key_parts=3, max_depth=3)


@pytest.mark.parametrize("text", [
    'a.b.c = 1',
    '[a.b.c]',
    'x = [[[1.5, 2.5, 3.5, 4.5]]]',  # floats: one dot each, not a key
    'x = { a.b.c = 1979-05-27T07:32:00.999Z }',
    'x = "d.o.t.s"\ny = \'.....\'',
    'x = """\n....\n.... \\""" ....\n"""',  # a multi-line string with an escaped quote
    "x = '''a''''",  # up to two quotes close a multi-line string with it
    'x = 1 # ......... [[[[[[[',
    '"a.b.c.d.e"."f" = 1',
])
def test_text_within_the_bounds_passes(text: str) -> None:
    tomllib.loads(text)  # valid TOML, to be sure the cases say what they claim
    check_toml(text, "t.toml", SMALL)


@pytest.mark.parametrize("text,line,reason", [
    ("a.b.c.d = 1", 1, "more than 3 parts"),
    ("ok = 1\n[a . b . 'c' . \"d\"]", 2, "more than 3 parts"),
    ("x = { y = { a.b.c.d = 1 } }", 1, "more than 3 parts"),
    ("x = [\n[\n[\n[1]]]]", 4, "nested more than 3 deep"),
    ("x = { a = { b = { c = { } } } }", 1, "nested more than 3 deep"),
    # a string closed where tomllib closes it: what follows is counted again
    ('x = "\\\\" \n a.b.c.d = 1', 2, "more than 3 parts"),
    ("x = '''a'''''\na.b.c.d = 1", 2, "more than 3 parts"),
    ("x" * 201, 1, "line longer than 200 characters"),
    ("x = [\n" + '"aaaaaaaaaa",\n' * 40 + "]", 1, "statement longer than 400 characters"),
])
def test_text_past_a_bound_is_refused_with_its_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(UntrustedTextError) as caught:
        check_toml(text, "t.toml", SMALL)
    assert str(caught.value).startswith(f"t.toml:{line}: "), caught.value
    assert reason in str(caught.value)


def test_bounded_lines_reads_no_more_than_a_line_of_a_huge_one() -> None:
    import io

    class Counting(io.StringIO):
        asked = 0

        def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
            Counting.asked = max(Counting.asked, size or 0)
            return super().readline(size)

    stream = Counting("ok\n" + "x" * 1_000_000 + "\n")
    with pytest.raises(UntrustedTextError, match="<stdin>:2: line longer than 200"):
        list(bounded_lines(stream, "<stdin>", SMALL))
    assert 0 < Counting.asked <= 202
    with pytest.raises(UntrustedTextError, match="^<stdin>: larger than 4 KiB"):
        list(bounded_lines(io.StringIO("x\n" * 3000), "<stdin>", SMALL))


# A generated document whose true key parts and nesting are known, with strings and comments
# full of dots, brackets, quotes and escapes that must not fool the count either way.
_TRICKY = st.text(alphabet=list('.[]{}=,#"\'\\ab'), max_size=12)
_BASIC = _TRICKY.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
_LITERAL = _TRICKY.filter(lambda s: "'" not in s).map(lambda s: f"'{s}'")
_MULTI = _TRICKY.map(lambda s: '"""' + s.replace("\\", "\\\\").replace('"', '\\"') + '"""')
_PART = st.one_of(st.sampled_from(["a", "b-c", "d_1"]), _BASIC, _LITERAL)


@st.composite
def _value(draw: Any, depth: int) -> tuple[str, int]:
    if depth == 0 or draw(st.booleans()):
        return draw(st.one_of(_BASIC, _LITERAL, _MULTI, st.sampled_from(["1.5", "2", "true"]))), 0
    items = [draw(_value(depth - 1)) for _ in range(draw(st.integers(1, 2)))]
    inner = max(d for _, d in items) + 1
    if draw(st.booleans()):
        return "[" + ", ".join(v for v, _ in items) + "]", inner
    return "{" + ", ".join(f"k{i} = {v}" for i, (v, _) in enumerate(items)) + "}", inner


@st.composite
def _document(draw: Any) -> tuple[str, int, int]:
    lines, most_parts, deepest = [], 1, 0
    for n in range(draw(st.integers(1, 4))):
        parts = draw(st.lists(_PART, min_size=1, max_size=5))
        value, depth = draw(_value(4))
        comment = draw(st.sampled_from(["", " # a.b.c.d.e [[[[", " # '\"'"]))
        lines.append(f"[t{n}]")
        lines.append(" . ".join(parts) + f" = {value}{comment}")
        most_parts, deepest = max(most_parts, len(parts)), max(deepest, depth, 1)
    return "\n".join(lines), most_parts, deepest


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_document())
def test_the_count_is_exact_whatever_the_strings_hold(doc: tuple[str, int, int]) -> None:
    text, parts, depth = doc
    tomllib.loads(text)
    refused = parts > SMALL.max_key_parts or depth > SMALL.max_depth
    try:
        check_toml(text, "t.toml", Limits(max_key_parts=SMALL.max_key_parts,
                                          max_depth=SMALL.max_depth))
    except UntrustedTextError:
        assert refused, text
    else:
        assert not refused, text
