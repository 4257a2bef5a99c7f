"""`pybridge doctor`: finds what pybridge needs and says how to get what is missing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .ebin import find_driver

ERL_INCLUDE = ('io:format("~ts/erts-~ts/include", '
               '[code:root_dir(), erlang:system_info(version)]), halt().')


def checks() -> list[tuple[str, bool, str]]:
    """(what, found, detail or how to fix)"""
    out = []
    erl = shutil.which("erl")
    out.append(("erl", bool(erl), erl or "apt-get install erlang-nox  (Debian; OTP 25 or newer)"))
    if erl:
        inc = subprocess.run([erl, "-noshell", "-eval", ERL_INCLUDE], capture_output=True,
                             text=True, timeout=60).stdout
        header = Path(inc) / "erl_driver.h"
        out.append(("erl_driver.h", header.exists(),
                    str(header) if header.exists() else "apt-get install erlang-dev"))
    rebar3 = shutil.which("rebar3")
    out.append(("rebar3", bool(rebar3), rebar3 or "apt-get install rebar3"))
    cc = shutil.which("cc") or shutil.which("gcc")
    out.append(("C compiler", bool(cc), cc or "apt-get install gcc make"))
    for name in ("pybridge.so", "pybridge_manager.so"):     # user ports, manager ports
        so = find_driver(name)
        out.append((name, so is not None,
                    str(so) if so else "build the Erlang app: rebar3 compile (or make) in"
                    " pybridge's checkout, or set PYBRIDGE_EBIN to its ebin directory"))
    try:
        import erlang  # noqa: F401
        ok, detail = True, f"{sys.executable} (Python {sys.version.split()[0]})"
    except ImportError:
        ok, detail = False, f"{sys.executable} -m pip install erlang-py"
    out.append(("Python env", ok, detail))
    return out
