"""Erlang External Term Format (ETF) encoder: Python terms to the bytes OTP's binary_to_term reads.

Pure Python, for the hot path, with pybridge's mapping between Python and Erlang terms (see
encode; _decode is its inverse). encode writes exactly the bytes of the running OTP's
term_to_binary/1 (use_latin1_atoms says which: OTP 25 and older write atoms whose
characters are all Latin-1 as ATOM_EXT, OTP 26 and later as SMALL_ATOM_UTF8_EXT, the
default here), pids, ports and references included. A map of more than 32 keys is a
HAMT in OTP, written in its hash order (_maphash); the hash of an atom, and of a pid, port
or reference, needs facts of the node (use_node_facts): without them a map whose keys hold
one is written in dict order. encode's `learn` asks the node for the indices of the atoms
it lacks, once per term, after which the term is encoded again (docs/PROTOCOL.md, "Big
maps").
"""
from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import erlang

from ._maphash import AtomIndex, NodeFacts, atoms, order
from ._types import (
    Atom,
    EncodeError,
    ImproperList,
    ListKey,
    LocalPid,
    MapKey,
    Term,
)

__all__ = ["encode"]

_TAG_U8 = struct.Struct(">BB").pack
_TAG_U16 = struct.Struct(">BH").pack
_TAG_U32 = struct.Struct(">BI").pack
_TAG_I32 = struct.Struct(">Bi").pack
_TAG_F64 = struct.Struct(">Bd").pack

_SMALL_INTS = [bytes((97, n)) for n in range(256)]
_SMALL_TUPLES = [bytes((104, n)) for n in range(256)]
_NIL = b"j"  # NIL_EXT (106)
_ERLANG_PY = (erlang.OtpErlangAtom, erlang.OtpErlangBinary, erlang.OtpErlangList,
              erlang.OtpErlangPid, erlang.OtpErlangPort, erlang.OtpErlangReference,
              erlang.OtpErlangFunction)
CACHE_LIMIT = 4096  # bounds the atom caches (here and in _decode), which untrusted input can grow

_Append = Callable[[bytes], None]  # where the encoder puts each piece of the output
_OrderKey = tuple[Any, ...]  # nested tuples that compare in Erlang's term order


_ATOM_ETF: dict[str, bytes] = {}  # atom name -> its encoding
_LATIN1_ATOMS = [False]  # minor_version 1 (OTP 25's default): Latin-1 atoms as ATOM_EXT


def _atom_etf(name: str) -> bytes:
    etf = _ATOM_ETF.get(name)
    if etf is None:
        if len(name) > 255:
            raise EncodeError(f"atom longer than 255 characters: {name[:20]!r}...")
        if _LATIN1_ATOMS[0] and all(ord(c) < 256 for c in name):
            etf = _TAG_U16(100, len(name)) + name.encode("latin-1")
        else:
            raw = name.encode("utf-8")
            etf = (_TAG_U8(119, len(raw)) if len(raw) < 256 else _TAG_U16(118, len(raw))) + raw
        if len(_ATOM_ETF) < CACHE_LIMIT:
            _ATOM_ETF[name] = etf
    return etf


def use_latin1_atoms(latin1: bool) -> None:
    """Write atoms as the running OTP's term_to_binary/1 does: True for OTP 25 and older
    (the worker sees which in the node's pid, pybridge._runtime.pids)."""
    global _TRUE, _FALSE
    _LATIN1_ATOMS[0] = latin1
    _ATOM_ETF.clear()
    _TRUE, _FALSE = _atom_etf("true"), _atom_etf("false")


_TRUE = _atom_etf("true")
_FALSE = _atom_etf("false")
_NODE_FACTS: list[tuple[AtomIndex | None, NodeFacts | None]] = [(None, None)]


def use_node_facts(atom_index: AtomIndex | None, node: NodeFacts | None) -> None:
    """Order big maps whose keys hold atoms (by atom_index: an atom's index in the node's
    atom table, or None) or this node's pids, ports and references (by node)."""
    _NODE_FACTS[0] = (atom_index, node)


Learn = Callable[[list[str]], bool]  # asks the node for atoms' indices: True if it told
_MISSES = [0]  # the maps any thread's encode left in dict order: a change means look below


class _Missed(threading.local):
    """The keys of the big maps this thread's encodes left in dict order, each with the
    output it belongs to (an encode that raised leaves its own, which the next drops)."""

    def __init__(self) -> None:
        self.keys: list[tuple[_Append, list[Term]]] = []

    def take(self, app: _Append) -> list[list[Term]]:
        mine, self.keys = self.keys, []
        return [keys for a, keys in mine if a == app]


_MISSED = _Missed()


def encode(term: Term, none_atom: str = "undefined", learn: Learn | None = None) -> bytes:
    """Encode a Python term as ETF bytes (with the leading 131 version byte).

    bytes-like and str -> binary, bool -> true/false, None -> none_atom,
    int, float, Atom, tuple, list (STRING_EXT when OTP would use it),
    ImproperList, dict -> map, ListKey -> list, MapKey -> map, and erlang-py
    objects as erlang-py encodes them.  Anything else raises EncodeError.

    With learn, a map of more than 32 keys whose keys hold atoms of unknown index makes
    encode ask learn for them all (one call per term, only once the term has encoded, so
    only atoms the term carries are asked for), then encode again in the learned order.
    A term without such a map costs nothing more: one look at a counter.
    """
    misses = _MISSES[0]
    out = _encode(term, none_atom)
    if _MISSES[0] != misses:    # this thread left a map in dict order, or another did
        missed = _MISSED.take(out.append)
        atom_index = _NODE_FACTS[0][0]
        if missed and learn is not None and atom_index is not None:
            names = atoms((k for keys in missed for k in keys), none_atom)
            unknown = sorted(n for n in names if atom_index(n) is None)
            if unknown and learn(unknown):
                out = _encode(term, none_atom)
                _MISSED.take(out.append)    # what is still unknown stays in dict order
    return b"".join(out)


def _encode(term: Term, none_atom: str) -> list[bytes]:
    out = [b"\x83"]
    try:
        # Validate none_atom even if no None occurs (cheap once cached).
        _ATOM_ETF.get(none_atom) or _atom_etf(none_atom)
        _enc(term, out.append, none_atom)
    except RecursionError:
        raise EncodeError("term is nested too deeply (or contains itself)") from None
    except UnicodeEncodeError as e:
        raise EncodeError(f"string is not encodable as UTF-8: {e}") from None
    return out


def _enc(t: Term, app: _Append, none: str) -> None:
    # Exact type checks, most frequent first; subclasses go to _enc_other.
    tt = type(t)
    if tt is Atom:
        app(_ATOM_ETF.get(t.name) or _atom_etf(t.name))
    elif tt is int:
        if 0 <= t <= 255:
            app(_SMALL_INTS[t])
        elif -2147483648 <= t <= 2147483647:
            app(_TAG_I32(98, t))
        else:
            app(_bignum(t))
    elif tt is bytes:
        app(_TAG_U32(109, len(t)))
        app(t)
    elif tt is tuple:
        n = len(t)
        app(_SMALL_TUPLES[n] if n < 256 else _TAG_U32(105, n))
        for x in t:
            _enc(x, app, none)
    elif tt is str:
        raw = t.encode("utf-8")
        app(_TAG_U32(109, len(raw)))
        app(raw)
    elif tt is list:
        _enc_list(t, app, none)
    elif t is None:
        app(_ATOM_ETF.get(none) or _atom_etf(none))
    elif tt is bool:
        app(_TRUE if t else _FALSE)
    elif tt is dict:
        _enc_map(t.items(), len(t), app, none)
    elif tt is float:
        if not math.isfinite(t):
            raise EncodeError(f"Erlang has no float {t}")
        app(_TAG_F64(70, t))
    else:
        _enc_other(t, app, none)


def _enc_other(t: Term, app: _Append, none: str) -> None:
    if isinstance(t, ListKey):  # before tuple: ListKey is a tuple subclass
        _enc_list(t, app, none)
    elif isinstance(t, ImproperList):
        if not t.items:
            raise EncodeError("ImproperList needs at least one item")
        if isinstance(t.tail, (list, ListKey, ImproperList, erlang.OtpErlangList)):
            raise EncodeError("ImproperList tail must not be a list")
        app(_TAG_U32(108, len(t.items)))
        for x in t.items:
            _enc(x, app, none)
        _enc(t.tail, app, none)
    elif isinstance(t, MapKey):
        _enc_map(t.items, len(t.items), app, none)
    elif isinstance(t, _NODE_TERMS):
        _enc_node_term(t, app)
    elif isinstance(t, erlang.OtpErlangAtom):
        v = t.value
        app(_atom_etf(v.decode("latin-1") if isinstance(v, bytes) else str(v)))
    elif isinstance(t, _ERLANG_PY):
        app(t.binary())
    elif isinstance(t, (bytes, bytearray, memoryview)):
        raw = bytes(t)  # for a memoryview, len() counts items, not bytes
        app(_TAG_U32(109, len(raw)))
        app(raw)
    elif isinstance(t, Atom):
        _enc(Atom(t.name), app, none)
    elif isinstance(t, int):
        _enc(int(t), app, none)
    elif isinstance(t, float):
        _enc(float(t), app, none)
    elif isinstance(t, str):
        _enc(str.__str__(t), app, none)
    elif isinstance(t, tuple):
        _enc(tuple(t), app, none)
    elif isinstance(t, list):
        _enc_list(t, app, none)
    elif isinstance(t, dict):
        _enc_map(t.items(), len(t), app, none)
    else:
        raise EncodeError(f"cannot encode {type(t).__module__}.{type(t).__qualname__} "
                          f"as an Erlang term")


_NODE_TERMS = (erlang.OtpErlangPid, erlang.OtpErlangPort, erlang.OtpErlangReference)


def _node_atom(node: Any) -> bytes:
    v = node.value
    return _atom_etf(v.decode("latin-1") if isinstance(v, bytes) else str(v))


def _enc_node_term(t: Any, app: _Append) -> None:
    """A pid, port or reference as term_to_binary writes it: erlang-py's own layout but
    its node atom written as the other atoms are."""
    own = t.binary()
    node = t.node.binary()
    # erlang-py writes: tag, [u16 length for references], node atom, the rest
    head = 3 if isinstance(t, erlang.OtpErlangReference) and own[0] != 101 else 1
    app(own[:head] + _node_atom(t.node) + own[head + len(node):])


def _bignum(t: int) -> bytes:
    mag = -t if t < 0 else t
    n = (mag.bit_length() + 7) // 8
    head = struct.pack(">BBB", 110, n, t < 0) if n < 256 else struct.pack(">BIB", 111, n, t < 0)
    return head + mag.to_bytes(n, "little")


def _enc_list(t: Sequence[Term], app: _Append, none: str) -> None:
    n = len(t)
    if not n:
        app(_NIL)
        return
    # OTP writes a proper list of 0..255 integers (at most 65535) as STRING_EXT.
    # bytes() checks the range in C; the type check excludes bools and
    # non-int objects with __index__, which are not Erlang integers.
    if n <= 65535 and isinstance(t[0], int):
        try:
            raw = bytes(t)
        except (TypeError, ValueError):
            raw = None
        if raw is not None and all(issubclass(x, int) and x is not bool
                                   for x in set(map(type, t))):
            app(_TAG_U16(107, n))
            app(raw)
            return
    app(_TAG_U32(108, n))
    for x in t:
        _enc(x, app, none)
    app(_NIL)


def _enc_map(items: Iterable[tuple[Term, Term]], n: int, app: _Append, none: str) -> None:
    app(_TAG_U32(116, n))
    if 1 < n <= 32:
        # OTP writes small maps in Erlang term order of their keys.
        keyed = sorted(((_order(k, none), k, v) for k, v in items), key=lambda e: e[0])
        for a, b in zip(keyed, keyed[1:], strict=False):
            if a[0] == b[0]:
                raise EncodeError(f"map keys {a[1]!r} and {b[1]!r} are the same Erlang term")
        for _, k, v in keyed:
            _enc(k, app, none)
            _enc(v, app, none)
    else:
        if n > 32:  # OTP's HAMT order, when the keys' hashes are known here
            atom_index, node = _NODE_FACTS[0]
            pairs = list(items)
            ordered = order(pairs, none, atom_index, lambda k: _order(k, none), node)
            if ordered is None:
                _MISSES[0] += 1
                _MISSED.keys.append((app, [k for k, _ in pairs]))
            items = ordered or pairs
        for k, v in items:
            _enc(k, app, none)
            _enc(v, app, none)


_OPAQUE_RANKS: dict[type, int] = {erlang.OtpErlangReference: 2, erlang.OtpErlangFunction: 3,
                 erlang.OtpErlangPort: 4, erlang.OtpErlangPid: 5, LocalPid: 5}


def _order(t: Term, none: str) -> _OrderKey:
    """Sort key giving Erlang's exact term order, as used for map keys.

    number < atom < reference < fun < port < pid < tuple < map < [] < list <
    bitstring; in this order every integer sorts before every float.  The
    first element is the type's rank, so keys of different types never
    compare their later elements.  Pids, ports, references and funs are
    ordered by their encoding, which is only an approximation.
    """
    if isinstance(t, bool):
        return (1, "true" if t else "false")
    if isinstance(t, int):
        return (0, 0, t)
    if isinstance(t, float):
        return (0, 1, t)
    if isinstance(t, Atom):
        return (1, t.name)
    if t is None:
        return (1, none)
    if isinstance(t, (bytes, bytearray, memoryview)):
        return (10, bytes(t), 8)
    if isinstance(t, str):
        return (10, t.encode("utf-8"), 8)
    if isinstance(t, (list, ListKey)):
        return _order_list(t, [], none)
    if isinstance(t, tuple):
        return (6, len(t), tuple(_order(x, none) for x in t))
    if isinstance(t, (dict, MapKey)):
        pairs = sorted((_order(k, none), _order(v, none))
                       for k, v in (t.items() if isinstance(t, dict) else t.items))
        return (7, len(pairs), tuple(k for k, _ in pairs), tuple(v for _, v in pairs))
    if isinstance(t, ImproperList):
        return _order_list(t.items, t.tail, none)
    if isinstance(t, erlang.OtpErlangAtom):
        v = t.value
        return (1, v.decode("latin-1") if isinstance(v, bytes) else str(v))
    if isinstance(t, erlang.OtpErlangBinary):
        if t.bits == 8 or not t.value:
            return (10, t.value, 8)
        # Bit strings compare bit by bit: ignore the unused low bits.
        last = t.value[-1] & (0xFF << (8 - t.bits)) & 0xFF
        return (10, t.value[:-1] + bytes((last,)), t.bits)
    if isinstance(t, erlang.OtpErlangList):
        if t.improper:
            return _order_list(t.value[:-1], t.value[-1], none)
        return _order_list(t.value, [], none)
    rank = _OPAQUE_RANKS.get(type(t))
    if rank is None:
        raise EncodeError(f"cannot encode {type(t).__module__}.{type(t).__qualname__} "
                          f"as an Erlang term")
    return (rank, t.binary())


def _order_list(items: Sequence[Term], tail: Term, none: str) -> _OrderKey:
    # Erlang compares lists cell by cell: a cell (rank 9 plus its head) against
    # the other list's tail compares by type rank, so [1|<<>>] > [1,2] > [1|x].
    tail_key = (8,) if isinstance(tail, list) and not tail else _order(tail, none)
    if not items:
        return tail_key
    return (9, tuple((9, _order(x, none)) for x in items) + (tail_key,))
