"""Term programs: how Python hands a term to erl_drv_output_term / erl_drv_send_term.

docs/PROTOCOL.md ("Term programs") is normative. A term without pids of this port is one
T_EXT chunk (its external format). A term that holds pids this port named (LocalPid) or
the port's own handle (``self.port``) is built around them, so the driver puts the pid in
as ERL_DRV_PID and no one has to ask the node for the pid's external form.

``origin`` is the handle of the port whose program this is (LocalPid.origin names it).
"""
from __future__ import annotations

from typing import Any

from .._encode import encode
from .._types import Atom, ImproperList, LocalPid, PortHandle
from . import protocol as P

_EXT = bytes((P.T_EXT,))


def _ext(term: Any, none_atom: str) -> bytes:
    etf = encode(term, none_atom)
    return _EXT + P.U32.pack(len(etf)) + etf


# exact types that hold no pid: most terms are made of these alone
_PLAIN = frozenset((Atom, int, float, bytes, str, bool, type(None)))


def _holds_local(term: Any, origin: object) -> bool:
    tt = type(term)
    if tt in _PLAIN:
        return False
    if tt is tuple or tt is list:
        plain = _PLAIN
        for t in term:
            if type(t) not in plain and _holds_local(t, origin):
                return True
        return False
    if isinstance(term, LocalPid):
        return term.origin is origin
    if isinstance(term, PortHandle):
        return True
    if isinstance(term, (tuple, list)):
        return any(_holds_local(t, origin) for t in term)
    if isinstance(term, ImproperList):
        return _holds_local(term.items, origin) or _holds_local(term.tail, origin)
    if isinstance(term, dict):
        return any(_holds_local(k, origin) or _holds_local(v, origin) for k, v in term.items())
    return False


def program(term: Any, origin: object, none_atom: str = "undefined") -> bytes:
    """The term program of term (one T_EXT chunk when it holds nothing of this port)."""
    if not _holds_local(term, origin):
        return _ext(term, none_atom)
    out: list[bytes] = []
    _emit(term, origin, none_atom, out)
    return b"".join(out)


def _emit(term: Any, origin: object, none_atom: str, out: list[bytes]) -> None:
    if isinstance(term, LocalPid) and term.origin is origin:
        out.append(bytes((P.T_PID,)) + P.U64.pack(term.raw))
    elif isinstance(term, PortHandle):
        if term is not origin:
            raise ValueError("only the port's own handle can be put in its terms")
        out.append(bytes((P.T_PORT,)))
    elif not _holds_local(term, origin):
        out.append(_ext(term, none_atom))
    elif isinstance(term, tuple):
        for t in term:
            _emit(t, origin, none_atom, out)
        out.append(bytes((P.T_TUPLE,)) + P.U32.pack(len(term)))
    elif isinstance(term, list):
        for t in term:
            _emit(t, origin, none_atom, out)
        out.append(bytes((P.T_NIL,)) + bytes((P.T_LIST,)) + P.U32.pack(len(term) + 1))
    elif isinstance(term, ImproperList):
        for t in term.items:
            _emit(t, origin, none_atom, out)
        _emit(term.tail, origin, none_atom, out)
        out.append(bytes((P.T_LIST,)) + P.U32.pack(len(term.items) + 1))
    else:  # dict
        for k, v in term.items():
            _emit(k, origin, none_atom, out)
            _emit(v, origin, none_atom, out)
        out.append(bytes((P.T_MAP,)) + P.U32.pack(len(term)))
