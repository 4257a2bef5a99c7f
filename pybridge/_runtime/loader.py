"""The module loader: where a driver's modules come from, and which other drivers see them.

A spec (module:Class) comes from Erlang; importing runs the module, so a spec must not
reach modules outside the python_path directories (the standard library, site-packages,
the worker's current directory). Two kinds of directories (docs/WRITING_DRIVERS.md,
"Imports"):

 - the app env python_path (--path) is shared by every driver of the worker. It goes at
   the end of sys.path, and a directory holding a module that the standard library or
   the worker's path already has (csv.py, or one of another such directory) is refused:
   opening a spec from it raises ImportError naming the module.
 - an open's {python_path, Dirs} (-p) is private to the ports opened with that same list.
   Its modules are submodules of a package of their own (_pybridge_path_N, whose __path__
   is Dirs); their `import helper` finds their siblings through an __import__ of their
   own (the __builtins__ of their globals), so no other driver imports them, and their
   csv.py or fractions.py replaces the standard one for them alone.

A reload (pybridge:reload, _runtime.reload) runs a module's source again, into a new module
object, in each of these places where it was imported; the old module object, and so the
code of the instances made from it, stays as it was.

One spec comes from outside them: pybridge.erlport:Python, the generic driver of the
Erlang module pybridge_python, whose functions import as ErlPort's did (the open's
directories first, then wherever Python finds the module).
"""
from __future__ import annotations

import builtins
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import types
from typing import Any

from .._api.driver import Driver
from .._api.python_calls import SPEC as PYTHON_SPEC
from .._api.python_calls import Python
from .._errors import PREFIX, BadArg, public_name

SPEC_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")
PathFinder = importlib.machinery.PathFinder
_import = builtins.__import__


def module_names(d: str) -> dict[str, str]:
    """The top-level modules a directory holds: name -> its entry."""
    suffixes = sorted(importlib.machinery.all_suffixes(), key=len, reverse=True)
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        return {}
    names: dict[str, str] = {}
    for e in entries:
        stem = next((e[:-len(s)] for s in suffixes if e.endswith(s)), None)
        if stem is None and os.path.isfile(os.path.join(d, e, "__init__.py")):
            stem = e
        if stem is not None and stem.isidentifier():
            names.setdefault(stem, e)
    return names


def shadowing(d: str, path: list[str]) -> str | None:
    """Why directory d may not join sys.path: a module of it that path already has."""
    # d itself may be there already: the worker's current directory (python -m) often is
    path = [p for p in path if os.path.realpath(p) != d]
    for name, entry in module_names(d).items():
        if name in sys.stdlib_module_names or name in sys.builtin_module_names:
            return (f"{os.path.join(d, entry)} would replace the standard library's module "
                    f"{name!r} for every driver: rename it, or give its directory to the "
                    f"open ({{python_path, [Dir]}}) of the drivers that use it")
        spec = PathFinder.find_spec(name, path)
        if spec is not None and spec.origin is not None:    # a namespace package never wins
            return (f"{os.path.join(d, entry)} would replace the module {name!r} of "
                    f"{spec.origin} for every driver: rename it, or give its directory to "
                    f"the open ({{python_path, [Dir]}}) of the drivers that use it")
    return None


class Namespace:
    """The private package of one open's python_path list, and the __import__ of its
    modules: their plain names first, then what every module sees."""

    def __init__(self, n: int, dirs: tuple[str, ...]) -> None:
        self.name = f"{PREFIX}{n}"
        self.dirs = list(dirs)
        self.found: dict[str, bool] = {}        # top-level name -> one of dirs has it
        pkg = types.ModuleType(self.name)
        pkg.__path__ = self.dirs
        pkg.__package__ = self.name
        pkg.__spec__ = importlib.machinery.ModuleSpec(self.name, None, is_package=True)
        pkg.__spec__.submodule_search_locations = self.dirs
        sys.modules[self.name] = pkg
        self.builtins = dict(builtins.__dict__, __import__=self.import_)

    def has(self, top: str) -> bool:
        found = self.found.get(top)
        if found is None:   # remembered: an `import json` in a callback is a hot path too
            found = self.found[top] = PathFinder.find_spec(top, self.dirs) is not None
        return found

    def import_(self, name: str, globals: Any = None, locals: Any = None,
                fromlist: Any = (), level: int = 0) -> types.ModuleType:
        if level == 0 and self.has(name.partition(".")[0]):
            mod = _import(f"{self.name}.{name}", globals, locals, fromlist, 0)
            # `import a.b` binds a: the private a, not the package around it
            return mod if fromlist else sys.modules[f"{self.name}.{name.partition('.')[0]}"]
        return _import(name, globals, locals, fromlist, level)


class PrivateSourceLoader(importlib.machinery.SourceFileLoader):
    """Runs a module of a Namespace with the Namespace's __import__."""

    def __init__(self, fullname: str, path: str, space: Namespace) -> None:
        super().__init__(fullname, path)
        self.space = space

    def exec_module(self, module: types.ModuleType) -> None:
        module.__builtins__ = self.space.builtins       # type: ignore[attr-defined]
        super().exec_module(module)


class NamespaceFinder:
    """On sys.meta_path: the submodules of the Namespaces, loaded by PrivateSourceLoader."""

    def __init__(self, spaces: dict[str, Namespace]) -> None:
        self.spaces = spaces

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if not fullname.startswith(PREFIX):
            return None
        space = self.spaces.get(fullname.partition(".")[0])
        if space is None or path is None:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = PrivateSourceLoader(fullname, spec.loader.path, space)
        return spec


class Loader:
    """The shared directories, the private packages, and the classes found so far."""

    def __init__(self, paths: list[str]) -> None:
        self.shared: list[str] = []
        self.refused: dict[str, str] = {}       # shared directory -> why it is refused
        self.spaces: dict[str, Namespace] = {}
        self.space_of: dict[tuple[str, ...], Namespace] = {}
        # (spec, the open's own dirs) -> the class, and the full name of its module
        self.classes: dict[tuple[str, tuple[str, ...]], tuple[type[Driver], str]] = {}
        sys.meta_path.insert(0, NamespaceFinder(self.spaces))
        for p in paths:
            p = os.path.realpath(p)
            if p in self.shared or p in self.refused:
                continue
            why = shadowing(p, sys.path)
            if why is None:
                self.shared.append(p)
                sys.path.append(p)
            else:
                self.refused[p] = why

    def space(self, dirs: tuple[str, ...]) -> Namespace:
        space = self.space_of.get(dirs)
        if space is None:
            space = self.space_of[dirs] = Namespace(len(self.space_of) + 1, dirs)
            self.spaces[space.name] = space
        return space

    def find_class(self, spec: str, paths: list[str] | None = None) -> type[Driver]:
        """The class of spec, from the open's own directories (paths) first, then the
        shared ones."""
        return self.find(spec, paths)[0]

    def find(self, spec: str, paths: list[str] | None = None) -> tuple[type[Driver], str]:
        """find_class, and the full name of the module spec names (private: with its
        package), which a reload of that module looks for."""
        dirs = tuple(dict.fromkeys(d for d in map(os.path.realpath, paths or ())
                                   if d not in self.shared))
        found = self.classes.get((spec, dirs))
        if found is not None:               # checked already: opens are a hot path too
            return found
        if not SPEC_RE.match(spec):
            raise BadArg(f"bad driver spec {spec!r}: expected module:Class")
        modname, clsname = spec.split(":")
        if spec == PYTHON_SPEC:
            # pybridge_python's generic driver: its functions import as ErlPort's did, the
            # open's directories first
            cls: Any = type(clsname, (Python,), {"importer": staticmethod(
                functools.partial(self.import_module, dirs=dirs, anywhere=True))})
            where = cls.__module__
        else:
            mod = self.import_module(modname, dirs)
            cls, where = getattr(mod, clsname, None), mod.__name__
        if not (isinstance(cls, type) and issubclass(cls, Driver)):
            raise TypeError(f"{spec} is not a subclass of pybridge.Driver")
        found = self.classes[(spec, dirs)] = cls, where
        return found

    def import_module(self, modname: str, dirs: tuple[str, ...],
                      anywhere: bool = False) -> types.ModuleType:
        """A module from the open's directories, else the shared ones; else, when anywhere
        (pybridge_python's functions), from wherever Python finds it."""
        # Why look before importing: an import runs the module, so a spec from Erlang must
        # not reach modules outside the configured python_path (the standard library, ...).
        top = modname.split(".")[0]
        if dirs and PathFinder.find_spec(top, list(dirs)) is not None:
            return importlib.import_module(f"{self.space(dirs).name}.{modname}")
        if anywhere:
            return importlib.import_module(modname)
        if PathFinder.find_spec(top, self.shared) is not None:
            mod = importlib.import_module(modname)
            if not self.is_shared(mod):
                raise ModuleNotFoundError(
                    f"{modname!r} is not imported from the configured python_path")
            return mod
        for d, why in self.refused.items():
            if PathFinder.find_spec(top, [d]) is not None:
                raise ImportError(why)
        raise ModuleNotFoundError(f"No module named {top!r} in the configured python_path")

    def is_shared(self, mod: types.ModuleType) -> bool:
        """mod comes from a shared directory (not the standard library, nor site-packages)."""
        where = getattr(mod, "__file__", None)
        return where is not None and \
            any(os.path.realpath(where).startswith(d + os.sep) for d in self.shared)

    # -- reload --
    def imported(self, name: str) -> list[str]:
        """The full names module `name` was imported under from the python_path: itself
        (shared directories), and in each open's private package."""
        mod = sys.modules.get(name)
        names = [name] if mod is not None and self.is_shared(mod) else []
        return names + [f for f in (f"{s.name}.{name}" for s in self.spaces.values())
                        if f in sys.modules]

    def run_again(self, full: str) -> types.ModuleType:
        """A new module object for sys.modules[full], its source file run afresh; sys.modules
        keeps the old one. Raises what compiling or running the source raises."""
        old = sys.modules[full]
        spec, loader = old.__spec__, getattr(old, "__loader__", None)
        if spec is None or spec.origin is None or \
                not isinstance(loader, importlib.machinery.SourceFileLoader):
            raise ImportError(f"{public_name(full)} is not a Python source module: it cannot "
                              f"be reloaded")
        new = importlib.util.module_from_spec(spec)
        if isinstance(loader, PrivateSourceLoader):
            new.__builtins__ = loader.space.builtins    # type: ignore[attr-defined]
        # Why not the .pyc: one written in the same second as the old source, for a new
        # source of the same size, would pass for the new code.
        code = loader.source_to_code(loader.get_data(spec.origin), spec.origin)
        sys.modules[full] = new     # as an import does: its code may look itself up there
        try:
            exec(code, new.__dict__)
        finally:
            sys.modules[full] = old
        return new

    def install(self, modules: dict[str, types.ModuleType]) -> None:
        """The new modules (full name -> module) replace the old ones: opens find them."""
        for full, new in modules.items():
            sys.modules[full] = new
            parent, _, child = full.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, new)
        self.classes = {k: v for k, v in self.classes.items() if v[1] not in modules}
