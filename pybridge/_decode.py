"""Erlang External Term Format (ETF) decoder: the bytes of term_to_binary to Python terms.

Pure Python, for the hot path, with pybridge's mapping (see decode; _encode is its inverse).
Pids, ports, references and funs are parsed by erlang-py and come back as its objects.
"""
from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from typing import NoReturn

import erlang

from ._encode import CACHE_LIMIT
from ._types import (
    Atom,
    DecodeError,
    ImproperList,
    ImproperListKey,
    ListKey,
    MapKey,
    Term,
)

__all__ = ["decode", "decode_from"]

_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_I32 = struct.Struct(">i").unpack_from
_F64 = struct.Struct(">d").unpack_from

# An atom table (see below): UTF-8 atom text -> value; None -> the none_atom name.
_Atoms = dict[bytes | None, Term]
_Decoder = Callable[[bytes, int, _Atoms], tuple[Term, int]]


# ---------------------------------------------------------------- decoding
#
# Each _d_* function decodes the term whose tag byte is at data[i] and
# returns (term, next index); _DEC maps every tag byte to one of them, which
# dispatches faster than a chain of tag tests.  Reads of fixed size (data[i],
# unpack_from) fail with IndexError/struct.error at the end of the data and
# _decode_at turns those into DecodeError; slices do not fail, so their
# lengths are checked, and counts are checked against the bytes left before
# looping.
#
# Atom tables map UTF-8 atom text to the decoded value (Atom, True, False or
# None), one table per none_atom; the table's None key holds that name.

_ATOM_TABLES: dict[str, _Atoms] = {}


def _atom_table(none_atom: str) -> _Atoms:
    if not isinstance(none_atom, str):
        raise TypeError("none_atom must be a str")
    atoms: _Atoms = {None: none_atom}
    if len(_ATOM_TABLES) < 64:
        _ATOM_TABLES[none_atom] = atoms
    return atoms


def _new_atom(atoms: _Atoms, raw: bytes) -> Atom | bool | None:
    name = raw.decode("utf-8")
    value: Atom | bool | None
    if name == atoms[None]:
        value = None
    elif name == "true" or name == "false":
        value = name == "true"
    else:
        value = Atom(name)
    if len(atoms) < CACHE_LIMIT:
        atoms[raw] = value
    return value


def decode(data: bytes | bytearray | memoryview, none_atom: str = "undefined") -> Term:
    """Decode ETF bytes (starting with the 131 version byte) into a Python term.

    binary -> bytes, bit string -> erlang.OtpErlangBinary, true/false ->
    bool, none_atom -> None, other atoms -> Atom, STRING_EXT -> list of
    ints, improper list -> ImproperList, map -> dict (list/map keys become
    ListKey/MapKey), pids, ports, references and funs -> erlang-py objects.
    Malformed data, including trailing bytes, raises DecodeError.
    """
    if type(data) is not bytes:
        data = _as_bytes(data)
    if not data or data[0] != 131:
        raise DecodeError("ETF data must start with the version byte 131")
    term, i = _decode_at(data, 1, none_atom)
    if i != len(data):
        raise DecodeError(f"{len(data) - i} trailing bytes after the term")
    return term


def decode_from(data: bytes | bytearray | memoryview, offset: int,
                none_atom: str = "undefined") -> tuple[Term, int]:
    """Decode one term (no version byte) at data[offset]; return (term, end offset)."""
    if type(data) is not bytes:
        data = _as_bytes(data)
    if not 0 <= offset < len(data):
        raise DecodeError(f"offset {offset} is outside the data ({len(data)} bytes)")
    return _decode_at(data, offset, none_atom)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected bytes, bytearray or memoryview, not {type(data).__name__}")


def _decode_at(data: bytes, i: int, none_atom: str) -> tuple[Term, int]:
    atoms = _ATOM_TABLES.get(none_atom) or _atom_table(none_atom)
    try:
        if data[i] == 80:  # compressed: only valid as the outermost term
            return _inflate(data, i, atoms)
        return _DEC[data[i]](data, i, atoms)
    except (IndexError, struct.error):
        raise DecodeError("truncated ETF data") from None
    except UnicodeDecodeError:
        raise DecodeError("atom name is not valid UTF-8") from None
    except RecursionError:
        raise DecodeError("term is nested too deeply") from None
    except erlang.ParseException as e:
        raise DecodeError(f"invalid pid, port, reference or fun: {e}") from None


def _inflate(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    size = _U32(data, i + 1)[0]
    if not size:  # also, a max_length of 0 below would mean "unlimited"
        raise DecodeError("compressed term with a declared size of 0")
    inflater = zlib.decompressobj()
    try:
        # max_length caps memory at the declared size, however the data inflates.
        raw = inflater.decompress(data[i + 5:], size)
        if not inflater.eof:
            if inflater.decompress(inflater.unconsumed_tail, 1):
                raise DecodeError("compressed term is larger than its declared size")
            if not inflater.eof:
                raise DecodeError("truncated compressed term")
    except zlib.error as e:
        raise DecodeError(f"corrupt compressed term: {e}") from None
    if len(raw) != size:
        raise DecodeError("compressed term is smaller than its declared size")
    term, j = _DEC[raw[0]](raw, 0, atoms)
    if j != size:
        raise DecodeError("trailing bytes inside the compressed term")
    return term, len(data) - len(inflater.unused_data)


def _truncated(what: str, need: int, i: int, data: bytes) -> DecodeError:
    return DecodeError(f"{what} of {need} bytes at offset {i} exceeds the "
                       f"{len(data) - i} bytes left")


def _d_small_int(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return data[i + 1], i + 2


def _d_int(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _I32(data, i + 1)[0], i + 5


def _d_small_atom_utf8(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    # Inlined copy of _atom_at: this is the atom tag pybridge writes.
    n = data[i + 1]
    j = i + 2 + n
    raw = data[i + 2:j]
    if len(raw) != n:
        raise _truncated("atom", n, i + 2, data)
    try:
        return atoms[raw], j
    except KeyError:
        return _new_atom(atoms, raw), j


def _d_atom_utf8(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _atom_at(data, i + 3, _U16(data, i + 1)[0], atoms, False)


def _d_small_atom(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _atom_at(data, i + 2, data[i + 1], atoms, True)


def _d_atom(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _atom_at(data, i + 3, _U16(data, i + 1)[0], atoms, True)


def _atom_at(data: bytes, i: int, n: int, atoms: _Atoms, latin1: bool) -> tuple[Term, int]:
    j = i + n
    raw = data[i:j]
    if len(raw) != n:
        raise _truncated("atom", n, i, data)
    if latin1 and not raw.isascii():
        raw = raw.decode("latin-1").encode("utf-8")
    try:
        return atoms[raw], j
    except KeyError:
        return _new_atom(atoms, raw), j


def _d_binary(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    n = _U32(data, i + 1)[0]
    j = i + 5 + n
    raw = data[i + 5:j]
    if len(raw) != n:
        raise _truncated("binary", n, i + 5, data)
    return raw, j


def _d_small_tuple(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _tuple(data, i + 2, data[i + 1], atoms)


def _d_large_tuple(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _tuple(data, i + 5, _U32(data, i + 1)[0], atoms)


def _tuple(data: bytes, i: int, n: int, atoms: _Atoms) -> tuple[tuple[Term, ...], int]:
    if n > len(data) - i:  # every element takes at least one byte
        raise _truncated("tuple", n, i, data)
    dec = _DEC
    items: list[Term] = [None] * n
    for k in range(n):
        tag = data[i]
        if tag == 97:  # small integers inline: saves a call for the most common term
            items[k] = data[i + 1]
            i += 2
        else:
            items[k], i = dec[tag](data, i, atoms)
    return tuple(items), i


def _d_nil(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return [], i + 1


def _d_string(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    n = _U16(data, i + 1)[0]
    raw = data[i + 3:i + 3 + n]
    if len(raw) != n:
        raise _truncated("string", n, i + 3, data)
    return list(raw), i + 3 + n


def _d_list(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    # A proper list may also be written as nested LIST_EXT tails; follow them
    # in a loop, so long cons chains do not recurse.
    dec = _DEC
    items: list[Term] = []
    append = items.append
    while data[i] == 108:
        n = _U32(data, i + 1)[0]
        i += 5
        if n > len(data) - i:
            raise _truncated("list", n, i, data)
        for _ in range(n):
            x, i = dec[data[i]](data, i, atoms)
            append(x)
    tail, i = dec[data[i]](data, i, atoms)
    if type(tail) is list:  # NIL_EXT or STRING_EXT
        items.extend(tail)
        return items, i
    return (ImproperList(items, tail) if items else tail), i


def _d_map(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    n = _U32(data, i + 1)[0]
    i += 5
    if n > (len(data) - i) // 2:
        raise _truncated("map", 2 * n, i, data)
    dec = _DEC
    result: dict[Term, Term] = {}
    for _ in range(n):
        key, i = dec[data[i]](data, i, atoms)
        value, i = dec[data[i]](data, i, atoms)
        try:
            result[key] = value
        except TypeError:  # a list or map inside the key
            result[_freeze(key)] = value
    if len(result) != n:
        raise DecodeError("map has duplicate keys (in Python terms: 1, 1.0 and "
                          "true are one key)")
    return result, i


def _freeze(t: Term) -> Term:
    """Hashable form of a decoded term, for use as a map key."""
    tt = type(t)
    if tt is list:
        return ListKey(map(_freeze, t))
    if tt is tuple:
        return tuple(map(_freeze, t))
    if tt is dict:
        return MapKey((k, _freeze(v)) for k, v in t.items())
    if tt is ImproperList:
        return ImproperListKey(map(_freeze, t.items), _freeze(t.tail))
    return t


def _d_new_float(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    value = _F64(data, i + 1)[0]
    if not math.isfinite(value):
        raise DecodeError(f"Erlang has no float {value}")
    return value, i + 9


def _d_float(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    # Pre-R11 FLOAT_EXT: 31 bytes of "%.20e" text, NUL padded.
    raw = data[i + 1:i + 32]
    if len(raw) != 31:
        raise _truncated("float", 31, i + 1, data)
    try:
        value = float(raw.split(b"\0", 1)[0])
    except ValueError:
        raise DecodeError(f"invalid FLOAT_EXT text {raw!r}") from None
    if not math.isfinite(value):
        raise DecodeError(f"Erlang has no float {value}")
    return value, i + 32


def _d_small_big(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _big(data, i + 2, data[i + 1])


def _d_large_big(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    return _big(data, i + 5, _U32(data, i + 1)[0])


def _big(data: bytes, i: int, n: int) -> tuple[int, int]:
    # A sign byte (non-zero means negative, as in OTP), then the magnitude
    # in little-endian bytes.
    sign = data[i]
    raw = data[i + 1:i + 1 + n]
    if len(raw) != n:
        raise _truncated("integer", n, i + 1, data)
    value = int.from_bytes(raw, "little")
    return (-value if sign else value), i + 1 + n


def _d_bit_binary(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    n = _U32(data, i + 1)[0]
    bits = data[i + 5]
    raw = data[i + 6:i + 6 + n]
    if len(raw) != n:
        raise _truncated("bit string", n, i + 6, data)
    if (n == 0) != (bits == 0) or bits > 8:  # as binary_to_term checks
        raise DecodeError(f"bit string of {n} bytes cannot end in {bits} bits")
    return (raw if bits in (0, 8) else erlang.OtpErlangBinary(raw, bits)), i + 6 + n


def _d_erlang_py(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    # Pids, ports, references, new funs and exports: parsed by erlang-py.
    if data[i] == 112 and _U32(data, i + 1)[0] < 4:  # its size counts itself
        raise DecodeError("NEW_FUN_EXT size is too small")
    j, term = erlang._binary_to_term(i, data)
    if j > len(data):  # erlang-py slices past the end without noticing
        raise DecodeError(f"truncated ETF data (tag {data[i]})")
    return term, j


def _d_old_fun(data: bytes, i: int, atoms: _Atoms) -> tuple[Term, int]:
    # FUN_EXT is walked here rather than by erlang-py, whose parser would
    # decode its free variables without size checks (a zlib bomb included).
    numfree = _U32(data, i + 1)[0]
    j = i + 5
    if numfree > len(data) - j:
        raise _truncated("fun", numfree, j, data)
    dec = _DEC
    pid, j = dec[data[j]](data, j, atoms)
    if not isinstance(pid, erlang.OtpErlangPid):
        raise DecodeError("FUN_EXT without a pid")
    _, j = dec[data[j]](data, j, atoms)  # module
    for _ in range(2):  # index, uniq
        number, j = dec[data[j]](data, j, atoms)
        if type(number) is not int:
            raise DecodeError("FUN_EXT index or uniq is not an integer")
    for _ in range(numfree):
        _, j = dec[data[j]](data, j, atoms)
    return erlang.OtpErlangFunction(117, data[i + 1:j]), j


def _d_unknown(data: bytes, i: int, atoms: _Atoms) -> NoReturn:
    raise DecodeError(f"unknown ETF tag {data[i]} at offset {i}")


_DEC: list[_Decoder] = [_d_unknown] * 256
for _tag, _fn in {
        97: _d_small_int, 98: _d_int, 119: _d_small_atom_utf8, 118: _d_atom_utf8,
        115: _d_small_atom, 100: _d_atom, 109: _d_binary, 104: _d_small_tuple,
        105: _d_large_tuple, 106: _d_nil, 107: _d_string, 108: _d_list, 116: _d_map,
        70: _d_new_float, 99: _d_float, 110: _d_small_big, 111: _d_large_big,
        77: _d_bit_binary, 117: _d_old_fun,
        # pids, ports, references, new funs, exports
        **dict.fromkeys((88, 103, 89, 102, 120, 90, 114, 101, 112, 113), _d_erlang_py),
}.items():
    _DEC[_tag] = _fn
del _tag, _fn
