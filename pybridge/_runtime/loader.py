"""The module loader: driver classes come from the configured python_path only.

A spec (module:Class) comes from Erlang; importing runs the module, so a spec must not
reach modules outside the allowed directories (the app env python_path, open's -p): the
standard library, site-packages, the worker's current directory.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import sys

from .._api.driver import Driver
from .._errors import BadArg

SPEC_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")


class Loader:
    """The allowed directories, and the classes found in them so far."""

    def __init__(self, paths: list[str]) -> None:
        self.allowed: list[str] = []
        self.classes: dict[str, type[Driver]] = {}
        self.allow(paths)

    def allow(self, paths: list[str]) -> None:
        for p in reversed(paths):
            p = os.path.realpath(p)
            if p not in self.allowed:
                self.allowed.insert(0, p)
            if p not in sys.path:
                sys.path.insert(0, p)

    def find_class(self, spec: str) -> type[Driver]:
        cls = self.classes.get(spec)
        if cls is not None:                 # checked already: opens are a hot path too
            return cls
        if not SPEC_RE.match(spec):
            raise BadArg(f"bad driver spec {spec!r}: expected module:Class")
        modname, clsname = spec.split(":")
        # Why look before importing: an import runs the module, so a spec from Erlang must
        # not reach modules outside the configured python_path (the standard library, ...).
        top = modname.split(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, self.allowed) is None:
            raise ModuleNotFoundError(f"No module named {top!r} in the configured python_path")
        mod = importlib.import_module(modname)
        where = os.path.realpath(getattr(mod, "__file__", None) or "")
        if not any(where.startswith(d + os.sep) for d in self.allowed):
            raise ModuleNotFoundError(
                f"{modname!r} is not imported from the configured python_path")
        found = getattr(mod, clsname, None)
        if not (isinstance(found, type) and issubclass(found, Driver)):
            raise TypeError(f"{spec} is not a subclass of pybridge.Driver")
        self.classes[spec] = found
        return found
