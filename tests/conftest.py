"""Settings for the whole suite."""

from __future__ import annotations

import os

from netcheck import i18n

# The tests assert English summaries and hints: a Spanish or Catalan shell (LANG=ca_ES.UTF-8)
# must not translate them, in this process or in the netcheck processes the tests start.
# test_i18n sets the language it wants explicitly.
if i18n.from_environment() != i18n.DEFAULT:
    if os.environ.get("LC_ALL"):
        os.environ["LC_ALL"] = "C.UTF-8"
    os.environ["LC_MESSAGES"] = "C.UTF-8"
