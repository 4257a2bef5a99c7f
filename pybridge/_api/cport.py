"""CPort: the port handle with output, outputv and output_term compiled for their common
shapes (a small bytes; one small bytes piece without header or skip; a plain term from the
thread that owns the port), framed straight into the port's compiled writer
(pybridge._wire._accel.PortCore); every other shape is Port's own method, so what reaches
Erlang is the same. The compiled port (_runtime.cconn.CConn) hands it to
drivers, the pure-Python one (PYBRIDGE_PURE=1) Port; tests/python/test_accel_conn.py sends
the same through both.
"""
from __future__ import annotations

from typing import Any

from .._wire import _accel
from .driver import Port


class CPort(_accel.PortCore, Port):
    """Port, output, outputv and output_term compiled; the *_py: Port's, for the rest."""

    __slots__ = ("_c",)
    _c: Any                             # the port's CConn (its writer, none_atom, thread)
    output_py = Port.output
    outputv_py = Port.outputv
    output_term_py = Port.output_term

