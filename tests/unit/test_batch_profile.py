"""Batch profiles: every bad line reported with its number, the good ones still run.

Unknown keys, duplicate names, bad targets, TOML syntax errors and misplaced tables each
become one problem at their line; 100 000 lines load in bounded time and memory.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netcheck.batch import profile as profiles
from netcheck.batch.profile import Profile, read_profile, read_target_lines


def load(text: str, **kw: object) -> Profile:
    return read_profile(io.StringIO(textwrap.dedent(text)), "p.toml", **kw)  # type: ignore[arg-type]


def by_name(p: Profile) -> dict[str, profiles.Entry]:
    return {e.name: e for e in p.entries}


HELPDESK = """\
    # the lab room's view of the campus
    [defaults]
    timeout = 2
    deadline = 10

    [campus]
    www      = "https://www.lab.test/"
    ssh      = "tcp://198.18.2.10:22"
    "dns server" = "dns://198.18.3.53"
    telnet   = { target = "198.18.2.10", port = 23, scheme = "tcp", expect = "closed" }

    [servers]
    v6 = { target = "2001:db8:2::10", scheme = "ssh" }
    web8080 = { target = "www.lab.test", port = 8080, timeout = 5 }
"""


def test_a_helpdesk_profile_reads_groups_names_and_options() -> None:
    p = load(HELPDESK)
    assert p.problems == []
    assert [e.name for e in p.entries] == ["campus/www", "campus/ssh", "campus/dns server",
                                           "campus/telnet", "servers/v6", "servers/web8080"]
    e = by_name(p)
    assert e["campus/www"].target.url == "https://www.lab.test:443/"  # type: ignore[union-attr]
    assert e["campus/www"].options == {"timeout": 2.0, "deadline": 10.0}
    assert e["campus/www"].line == 7
    telnet = e["campus/telnet"]
    assert (telnet.target.scheme, telnet.target.port, telnet.expect) == ("tcp", 23, "closed")
    assert telnet.text == "tcp://198.18.2.10:23"  # the port option is visible in its label
    assert e["servers/v6"].target.url == "ssh://[2001:db8:2::10]:22"  # type: ignore[union-attr]
    assert e["servers/web8080"].options["timeout"] == 5.0
    assert e["campus/ssh"].short_name == "ssh" and e["campus/ssh"].group == "campus"


def test_bad_lines_are_reported_with_their_line_and_the_good_ones_still_run() -> None:
    p = load("""\
        [defaults]
        timout = 3
        [campus]
        www = "https://www.lab.test/"
        bad = "exa mple"
        typo = { target = "198.18.2.10", prot = 22 }
        www = "http://other.lab.test/"
        num = 42
        port = { target = "198.18.2.10", port = 70000 }
        good = "tcp://198.18.2.10:22"
        """)
    problems = {e.line: e.problem for e in p.problems}
    assert set(problems) == {2, 5, 6, 7, 8, 9}
    assert "unknown key 'timout'" in problems[2] and "'timeout'" in problems[2]
    assert "white space" in problems[5]
    assert "unknown key 'prot'" in problems[6] and "did you mean 'port'" in problems[6]
    assert "duplicate name 'campus/www' (first at line 4)" in problems[7]
    assert "a string or a table" in problems[8]
    assert "65535" in problems[9]
    assert [e.name for e in p.entries if e.runnable] == ["campus/www", "campus/good"]
    lines = list(p.problem_lines())
    assert lines[0].startswith("p.toml:2: [defaults]: unknown key 'timout'")


def test_toml_syntax_errors_cost_one_line_not_the_file() -> None:
    p = load("""\
        [campus]
        a = "tcp://198.18.2.10:22"
        b = "unterminated
        c = { target = "198.18.2.10", port = }
        [broken header
        d = "tcp://198.18.2.10:23"
        [servers]
        e = "tcp://198.18.2.10:24"
        """)
    bad = {e.line for e in p.problems}
    assert bad == {3, 4, 5, 6}  # d sits under the bad header: it is not guessed into a group
    assert [e.name for e in p.entries if e.runnable] == ["campus/a", "servers/e"]


def test_toml_forbidden_duplicates_and_arrays_of_tables_are_reported() -> None:
    p = load("""\
        [campus]
        a = "tcp://198.18.2.10:22"
        [campus]
        b = "tcp://198.18.2.10:23"
        [[list]]
        c = "tcp://198.18.2.10:24"
        x.y = "tcp://198.18.2.10:25"
        """)
    problems = {e.line: e.problem for e in p.problems}
    assert "defined again (first at line 1)" in problems[3]
    assert "arrays of tables" in problems[5]
    assert "dotted key" in problems[7]
    assert [e.name for e in p.entries if e.runnable] == ["campus/a", "campus/b", "list/c"]


def test_multi_line_values_and_comments_are_read() -> None:
    p = load('''\
        [g]  # a group
        a = { target = "tcp://198.18.2.10:22", expect = "open" }  # trailing comment
        b = """tcp://198.18.2.10:23"""
        c = 'tcp://198.18.2.10:24'
        ''')
    assert p.problems == []
    assert [e.target.port for e in p.entries] == [22, 23, 24]  # type: ignore[union-attr]


def test_scheme_and_port_precedence() -> None:
    p = load("""\
        [defaults]
        scheme = "tcp"
        port = 22
        [g]
        bare = "198.18.2.10"
        own_port = "198.18.2.10:2222"
        url = "https://www.lab.test/"
        entry_port = { target = "https://www.lab.test:8443/", port = 9443 }
        clash = { target = "https://www.lab.test/", scheme = "smtp" }
        """)
    e = by_name(p)
    assert e["g/bare"].target.url == "tcp://198.18.2.10:22"  # type: ignore[union-attr]
    assert e["g/own_port"].target.port == 2222  # type: ignore[union-attr]
    assert e["g/url"].target.port == 22  # a default port fills in where none is written
    assert e["g/entry_port"].target.port == 9443  # type: ignore[union-attr]
    assert "contradicts" in (e["g/clash"].problem or "")


def test_command_line_values_beat_defaults_but_not_the_entry() -> None:
    p = load("""\
        [defaults]
        timeout = 2
        [g]
        a = "tcp://198.18.2.10:22"
        b = { target = "tcp://198.18.2.10:22", timeout = 7 }
        """, overrides={"timeout": 4.0})
    assert [e.options["timeout"] for e in p.entries] == [4.0, 7.0]


def test_cafile_is_relative_to_the_profile(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "p.toml").write_text('[g]\na = { target = "https://www.lab.test/", '
                                     'cafile = "ca.pem" }\nb = { target = "https://x.lab.test/",'
                                     ' cafile = "missing.pem" }\n')
    p = profiles.load(str(tmp_path / "p.toml"))
    a, b = p.entries
    assert a.options["cafile"] == str(tmp_path / "ca.pem")
    assert b.problem is not None and "no such file" in b.problem and b.line == 3


def test_stdin_lines_skip_blanks_and_comments_and_report_bad_ones() -> None:
    p = read_target_lines(io.StringIO("# targets\n\ntcp://198.18.2.10:22\nwww.lab.test  # web\n"
                                      "bad target\ntcp://198.18.2.10:22\n[2001:db8::1]:22\n"))
    assert [(e.line, e.runnable) for e in p.entries] == [(3, True), (4, True), (5, False),
                                                         (7, True)]
    assert list(p.problem_lines()) == [
        "<stdin>:5: target contains white space",
        "<stdin>:6: duplicate target 'tcp://198.18.2.10:22' (first at line 3); run once"]
    assert p.entries[1].target.url == "https://www.lab.test:443/"  # type: ignore[union-attr]


def test_missing_or_huge_files_are_one_clear_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(profiles.ProfileError, match="No such file"):
        profiles.load(str(tmp_path / "nope.toml"))
    with pytest.raises(profiles.ProfileError, match="not a regular file"):
        profiles.load(str(tmp_path))
    big = tmp_path / "big.toml"
    big.write_text("[g]\n" + 'a = "x"\n' * 100)
    monkeypatch.setattr(profiles, "LIMITS", dataclasses.replace(profiles.LIMITS, max_bytes=100))
    with pytest.raises(profiles.ProfileError, match="larger than"):
        profiles.load(str(big))
    with pytest.raises(profiles.ProfileError, match="larger than"):
        profiles.load("-", stdin=io.StringIO("x.lab.test\n" * 100))


LOAD_BIG = """
import json, sys, time


def hwm_kb():  # this image's peak; ru_maxrss would carry the forking parent's across exec
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))


from netcheck.batch import profile
before = hwm_kb()
t = time.monotonic()
p = profile.load(sys.argv[1])
print(json.dumps({"seconds": time.monotonic() - t, "entries": len(p.entries),
                  "runnable": p.runnable, "problems": [e.line for e in p.problems],
                  "rss_kb": hwm_kb(),
                  "rss_before_kb": before}))
"""


def test_a_100000_line_profile_loads_in_bounded_time_and_memory(tmp_path: Path) -> None:
    lines = ["[defaults]", "timeout = 1", "[sweep]"]
    lines += [f'h{i} = "tcp://198.19.{i // 250 % 4}.{i % 250 + 1}:{1 + i // 1000}"'
              for i in range(99_990)]
    lines[5000] = 'bad = "not a target"'
    lines[60000] = 'h3 = "tcp://198.19.0.9:9"'  # a duplicate name far from the first
    lines += ["[more]", 'x = { target = "198.19.0.1", port = 22, prot = 1 }',
              'y = "tcp://198.19.0.2:22"'] + ["# comment"] * 4
    assert len(lines) == 100_000
    path = tmp_path / "big.toml"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-c", LOAD_BIG, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["problems"] == [5001, 60001, 99995]
    assert got["runnable"] == 99_990 - 2 + 1
    assert got["seconds"] < 10, got  # about 2 s here
    assert got["rss_kb"] < 200 * 1024, got  # about 110 MB peak for the whole process


def test_two_problems_on_one_line_get_distinct_names() -> None:
    p = load("""\
        defaults = { timout = 1, dedline = 2 }
        [g]
        a = "tcp://198.18.2.10:22"
        """)
    names = [e.name for e in p.problems]
    assert len(names) == 2 and len(set(names)) == 2 and all(e.line == 1 for e in p.problems)
