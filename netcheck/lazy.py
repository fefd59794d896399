"""Modules imported on first use, so that listing checks never pays for asyncio.

``netcheck checks`` and ``--help`` import every check module; the probes they use need
asyncio (~30 ms with ssl) only when a diagnosis actually runs.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any


class LazyModule(ModuleType):
    """A stand-in that imports the real module at the first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str) -> Any:
        module = sys.modules.get(self._lazy_name) or importlib.import_module(self._lazy_name)
        return getattr(module, attr)


def lazy(name: str) -> Any:
    """The module if already imported, else a stand-in that imports it when first used."""
    return sys.modules.get(name) or LazyModule(name)


# The type checker sees the real module (every name typed, as a plain import gives); at run
# time the stand-in defers the ~30 ms import to the first attribute used.
if TYPE_CHECKING:
    import asyncio
else:
    asyncio = lazy("asyncio")
