"""Where the pybridge Erlang app's ebin is: the one search the shell, doctor and the pytest
plugin share (and the checkout `pybridge bench` runs in)."""
from __future__ import annotations

import os
from pathlib import Path

BUILT = "_build/default/lib/pybridge/ebin"
# the checkout this package is installed from (an editable install), if it is one
CHECKOUT = Path(__file__).resolve().parents[2]


def candidates(given: str | Path | None = None, root: Path | None = None) -> list[Path]:
    """given (an option), else $PYBRIDGE_EBIN, else the build under root (default: the
    current directory) and the one of this package's checkout."""
    given = given or os.environ.get("PYBRIDGE_EBIN")
    if given:
        return [Path(given).resolve()]
    return [((root or Path(".")) / BUILT).resolve(), CHECKOUT / BUILT]


def find_ebin(given: str | Path | None = None, root: Path | None = None) -> Path | None:
    """The first candidate holding pybridge.app."""
    return next((e for e in candidates(given, root) if (e / "pybridge.app").exists()), None)


def find_driver(name: str = "pybridge.so") -> Path | None:
    """A shared object of the driver (pybridge.so, pybridge_manager.so), in the priv
    directory beside a candidate ebin."""
    for e in candidates():
        so = e.parent / "priv" / name
        if so.exists():
            return so
    return None
