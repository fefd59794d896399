"""Terminals: ``--no-color``, ``NO_COLOR`` and a pipe give plain text (no escape sequence at
all, no spinner); lines carry no trailing blanks; tables fit ``$COLUMNS`` (80 when piped)."""

from __future__ import annotations

import io
import os
import threading
from typing import Iterator

import pytest
from rich.cells import cell_len

from netcheck import cli, i18n
from netcheck.model import CheckOutcome, Hint, Layer, Report, Result, Status, Verdict
from netcheck.render.text import text_of, trim_lines
from tests.unit.test_batch_run import closed_port as refusing_port

ESC = "\x1b"


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    i18n.set_language("en")
    yield
    i18n.set_language("en")


@pytest.fixture
def closed_port() -> int:
    return refusing_port()


class Terminal:
    """A pseudo-terminal: netcheck writes to its slave end, the test reads the master."""

    def __init__(self, columns: int = 80) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.file = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the slave end closed
                return
            if not data:
                return
            self.chunks.append(data)

    def output(self) -> str:
        self.file.close()
        self.reader.join(5)
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8", "replace")


def run_on_terminal(*args: str) -> str:
    term = Terminal()
    cli.run(list(args), term.file, io.StringIO())
    term.file.flush()
    return term.output()


def test_a_terminal_gets_colour_so_the_tests_below_can_fail(closed_port: int) -> None:
    out = run_on_terminal(f"tcp://127.0.0.1:{closed_port}", "--deadline", "8")
    assert ESC in out


def test_no_color_on_a_terminal_gives_no_escape_sequence_and_no_spinner(closed_port: int
                                                                        ) -> None:
    out = run_on_terminal(f"tcp://127.0.0.1:{closed_port}", "--no-color", "--deadline", "8")
    assert ESC not in out, repr(out[:300])
    assert "TCP_REFUSED" in out


def test_no_color_variable_on_a_terminal_is_the_same(closed_port: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = run_on_terminal(f"tcp://127.0.0.1:{closed_port}", "--deadline", "8")
    assert ESC not in out, repr(out[:300])


def test_a_pipe_gets_plain_text(closed_port: int) -> None:
    out = io.StringIO()
    cli.run([f"tcp://127.0.0.1:{closed_port}", "--deadline", "8"], out, io.StringIO())
    assert ESC not in out.getvalue() and "TCP_REFUSED" in out.getvalue()


def test_batch_table_on_a_terminal_with_no_color(closed_port: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"tcp://127.0.0.1:{closed_port}\n"))
    out = run_on_terminal("batch", "-", "--only", "transport.tcp", "--no-color")
    assert ESC not in out, repr(out[:300])
    assert f"tcp://127.0.0.1:{closed_port}" in out


# -- no trailing blanks, and the width -------------------------------------------------------

def long_report() -> Report:
    summary = ("gateway 198.18.1.99 answers neither ARP nor ping on eth0, and that is a long "
               "sentence that has to wrap twice at eighty columns to show the padding")
    root = CheckOutcome("network.gateway", Layer.NETWORK, "Gateway answers on the link",
                        Result(Status.FAIL, summary, code="GATEWAY_UNREACHABLE",
                               hint=Hint("Nothing at 198.18.1.99 answers ARP on eth0.",
                                         ["ip neigh show dev eth0"])))
    return Report(mode="diagnose", target={"input": "198.18.2.10:22", "scheme": "tcp",
                                           "host": "198.18.2.10", "port": 22,
                                           "addresses": ["198.18.2.10"]},
                  host={"hostname": "a-host-name-that-is-rather-long-indeed",
                        "privileged": True, "egress_interface": "eth0"},
                  verdict=Verdict.BROKEN, root_cause=root, checks=[root],
                  started_at="2026-11-22T10:00:00Z", duration_ms=1.0, version="0.1.0")


def test_wrapped_lines_carry_no_trailing_blanks() -> None:
    text = text_of(long_report(), width=80)
    assert text.count("\n") > 10
    assert [line for line in text.splitlines() if line != line.rstrip()] == []
    assert max(cell_len(line) for line in text.splitlines()) <= 80


def test_trimming_keeps_a_style_reset() -> None:
    assert trim_lines("a \x1b[1mbold\x1b[0m   \nb  ") == "a \x1b[1mbold\x1b[0m\nb"


def test_checks_listing_fits_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    for columns, lang in ((80, "en"), (60, "ca")):
        monkeypatch.setenv("COLUMNS", str(columns))
        out = io.StringIO()
        assert cli.run(["checks", "--lang", lang], out, io.StringIO()) == 0
        lines = out.getvalue().splitlines()
        assert len(lines) > 40
        too_long = [line for line in lines if cell_len(line) > columns
                    and " " in line.strip()]  # one unbreakable word may not fit
        assert too_long == []


def test_batch_table_fits_80_columns_when_piped(closed_port: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    names = "\n".join(f"tcp://127.0.0.{n}:{closed_port}" for n in (1, 2))
    monkeypatch.setattr("sys.stdin", io.StringIO(names + "\n"))
    out = io.StringIO()
    rc = cli.run(["batch", "-", "--only", "transport.tcp", "--lang", "es"], out,
                 io.StringIO())
    assert rc == 2
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["destino", "veredicto", "causa", "raíz", "tiempo"]
    assert max(cell_len(line) for line in lines) <= 80
    assert [line for line in lines if line != line.rstrip()] == []
    assert "ROTO" in out.getvalue()


def test_batch_table_in_a_huge_run_is_cut_to_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck.batch import outputs

    monkeypatch.setattr(outputs, "RICH_TABLE_ROWS", 0)
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setattr("sys.stdin", io.StringIO("tcp://127.0.0.1:9\n"))
    out = io.StringIO()
    cli.run(["batch", "-", "--only", "transport.tcp"], out, io.StringIO())
    lines = out.getvalue().splitlines()
    assert max(cell_len(line) for line in lines) <= 60, lines
