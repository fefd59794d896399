"""The shared command-line pieces: the command found after option values the parsers know,
and the one Options builder with the defaults of ``netcheck.runner.Options``."""

from __future__ import annotations

import argparse
from io import StringIO

import pytest

from netcheck import cli, cliutil, defaults
from netcheck.runner import Options
from netcheck.server.options import ServerOptions


@pytest.mark.parametrize("argv, command", [
    (["--scheme", "https", "batch", "-"], "batch"),  # batch's own valued options
    (["--expect", "closed", "batch", "-"], "batch"),
    (["--timeout", "5", "server", "--port", "80"], "server"),
    (["--max-hops", "batch", "path", "host:80"], "path"),  # a value that names a command
    (["--proto", "udp", "path", "host"], "path"),
    (["--timeout", "5", "host:80"], "diagnose"),
    (["host:80", "--timeout", "5"], "diagnose"),
])
def test_the_command_is_the_first_word_that_is_no_option_value(argv: list[str],
                                                                command: str) -> None:
    assert cli._normalise(argv)[0] == command


def test_every_option_that_takes_a_value_is_known_to_the_command_finder() -> None:
    valued = cli._valued(["--not-an-option-of-the-base-parser", "batch"])
    # one from each command module, and the common ones
    for option in ("--scheme", "--expect", "--only", "--listen", "--filter", "--max-hops",
                   "--since", "--confirm-timeout", "--timeout", "--format", "--proxy"):
        assert option in valued, option
    for flag in ("--json", "-4", "--quiet", "--watch", "--scan"):
        assert flag not in valued, flag


def test_scheme_before_batch_reaches_batch_not_diagnose() -> None:
    err = StringIO()
    code = cli.run(["--scheme", "https", "batch", "--expect", "sideways"], StringIO(), err)
    assert code == 3 and "--expect" in err.getvalue() and "sideways" in err.getvalue()


def test_the_parsers_defaults_are_the_options_defaults() -> None:
    parser = argparse.ArgumentParser()
    cliutil.add_common_options(parser)
    args = parser.parse_args([])
    assert (args.timeout, args.deadline) == (defaults.TIMEOUT, defaults.DEADLINE)
    assert (Options().timeout, Options().deadline) == (defaults.TIMEOUT, defaults.DEADLINE)
    built = cliutil.build_options(args)
    assert built.timeout == Options().timeout and built.deadline == Options().deadline


def test_build_options_takes_what_args_have_and_keeps_defaults_for_the_rest() -> None:
    args = argparse.Namespace(timeout=0.5, deadline=3.0, family=6, interface="eth0",
                              lang="ca", verbose=True, proxy="http://p:3128", unrelated=1)
    opts = cliutil.build_options(args, locate=True)
    assert (opts.timeout, opts.deadline, opts.family, opts.interface) == (0.5, 3.0, 6, "eth0")
    assert opts.lang == "ca" and opts.verbose and opts.locate and opts.proxy == "http://p:3128"
    assert opts.sysroot == Options().sysroot and opts.no_proxy is False


def test_build_options_builds_a_subclass_whose_own_fields_come_from_overrides() -> None:
    # server's --request-id is the id to find in the log, not this run's request id
    args = argparse.Namespace(timeout=1.0, request_id="abc", port="80", scan=True)
    opts = cliutil.build_options(args, ServerOptions, port=80, scan=False, search_id="abc")
    assert isinstance(opts, ServerOptions)
    assert opts.port == 80 and opts.search_id == "abc" and not opts.scan
    assert opts.request_id != "abc" and opts.timeout == 1.0


def test_build_options_from_a_mapping_keeps_only_options_fields() -> None:
    # a batch entry's or an exporter module's options: other keys are no Options fields
    opts = cliutil.build_options({"timeout": 0.5, "family": 4, "cafile": "/ca.pem",
                                  "port": 23, "only": ("transport.tcp",), "lang": "es"},
                                 lang="ca", expect="closed")
    assert (opts.timeout, opts.family, opts.cafile, opts.lang) == (0.5, 4, "/ca.pem", "ca")
    assert opts.expect == "closed" and opts.deadline == defaults.DEADLINE
    assert Options().expect == defaults.EXPECT == "open"
