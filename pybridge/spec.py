"""The driver term format of erl_drv_output_term / erl_drv_send_term, from Python.

A spec is a flat list in the order a C driver fills its ErlDrvTermData array::

    from pybridge.spec import *
    self.port.output_term_spec([ERL_DRV_ATOM, Atom("tcp"),
                                ERL_DRV_PORT, self.port,
                                ERL_DRV_INT, 100,
                                ERL_DRV_BINARY, data, len(data), 0,
                                ERL_DRV_LIST, 2,
                                ERL_DRV_TUPLE, 3])

It is evaluated here, as the emulator would, into a term; every count is checked, so a
malformed spec raises SpecError and never reaches Erlang. Differences from C: ERL_DRV_PID
takes a pid object (``self.port.caller()``), ERL_DRV_PORT the port handle, binaries and
strings take Python bytes (with the lengths and offsets C would give).
"""
from __future__ import annotations

from typing import Any

from ._decode import decode
from ._types import Atom, ImproperList, Pid

__all__ = ["SpecError", "evaluate", "ERL_DRV_NIL", "ERL_DRV_ATOM", "ERL_DRV_INT", "ERL_DRV_UINT",
           "ERL_DRV_INT64", "ERL_DRV_UINT64", "ERL_DRV_PORT", "ERL_DRV_BINARY",
           "ERL_DRV_BUF2BINARY", "ERL_DRV_STRING", "ERL_DRV_TUPLE", "ERL_DRV_LIST", "ERL_DRV_PID",
           "ERL_DRV_STRING_CONS", "ERL_DRV_FLOAT", "ERL_DRV_EXT2TERM", "ERL_DRV_MAP"]

# the values of erl_driver.h, so that a spec reads like its C original
ERL_DRV_NIL = 1
ERL_DRV_ATOM = 2
ERL_DRV_INT = 3
ERL_DRV_PORT = 4
ERL_DRV_BINARY = 5
ERL_DRV_STRING = 6
ERL_DRV_TUPLE = 7
ERL_DRV_LIST = 8
ERL_DRV_STRING_CONS = 9
ERL_DRV_PID = 10
ERL_DRV_FLOAT = 11
ERL_DRV_EXT2TERM = 12
ERL_DRV_UINT = 13
ERL_DRV_BUF2BINARY = 14
ERL_DRV_INT64 = 15
ERL_DRV_UINT64 = 16
ERL_DRV_MAP = 17

_RANGES = {ERL_DRV_INT: (-(1 << 63), 1 << 63), ERL_DRV_UINT: (0, 1 << 64),
           ERL_DRV_INT64: (-(1 << 63), 1 << 63), ERL_DRV_UINT64: (0, 1 << 64)}


class SpecError(ValueError):
    """The spec is malformed: it would make no term, or a wrong one."""


def cons(items: list[Any], tail: Any) -> Any:
    """items consed onto tail, as the emulator builds a list: proper or improper."""
    if isinstance(tail, list):
        return items + tail
    if isinstance(tail, ImproperList):
        return ImproperList(items + tail.items, tail.tail) if items else tail
    return ImproperList(items, tail) if items else tail


def evaluate(spec: list[Any], port: Any = None) -> Any:
    """Run the spec as the emulator would; returns the one term it builds."""
    stack: list[Any] = []
    args = iter(spec)

    def arg(what: str) -> Any:
        try:
            return next(args)
        except StopIteration:
            raise SpecError(f"the spec ends where {what} was expected") from None

    def pop(n: int, op: str) -> list[Any]:
        if not isinstance(n, int) or n < 0 or n > len(stack):
            raise SpecError(f"{op} of {n!r} with {len(stack)} terms built")
        items = stack[len(stack) - n:] if n else []
        del stack[len(stack) - n:]
        return items

    def data(what: str) -> bytes:
        d = arg(what)
        if not isinstance(d, (bytes, bytearray, memoryview)):
            raise SpecError(f"{what} must be bytes, not {type(d).__name__}")
        return bytes(d)

    def count(what: str, limit: int) -> int:
        n = arg(what)
        if not isinstance(n, int) or not 0 <= n <= limit:
            raise SpecError(f"{what} {n!r} outside 0..{limit}")
        return n

    for op in args:
        if op == ERL_DRV_NIL:
            stack.append([])
        elif op == ERL_DRV_ATOM:
            a = arg("an atom")
            stack.append(a if isinstance(a, Atom) else Atom(a))
        elif op in _RANGES:
            v = arg("an integer")
            lo, hi = _RANGES[op]
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
                raise SpecError(f"{v!r} is not a valid value for this integer type")
            stack.append(v)
        elif op == ERL_DRV_FLOAT:
            v = arg("a float")
            if not isinstance(v, float):
                raise SpecError("ERL_DRV_FLOAT takes a float")
            stack.append(v)
        elif op == ERL_DRV_PORT:
            p = arg("the port")
            if port is not None and p is not port:
                raise SpecError("ERL_DRV_PORT takes the driver's own port handle")
            stack.append(p)
        elif op == ERL_DRV_PID:
            p = arg("a pid")
            if not isinstance(p, Pid):
                raise SpecError("ERL_DRV_PID takes a pid object")
            stack.append(p)
        elif op == ERL_DRV_BINARY:
            b = data("the binary")
            n = count("the length", len(b))
            off = count("the offset", len(b) - n)
            stack.append(b[off:off + n])
        elif op == ERL_DRV_BUF2BINARY:
            b = data("the buffer")
            stack.append(b[:count("the length", len(b))])
        elif op == ERL_DRV_STRING:
            b = data("the string")
            stack.append(list(b[:count("the length", len(b))]))
        elif op == ERL_DRV_STRING_CONS:
            b = data("the string")
            chars = list(b[:count("the length", len(b))])
            stack.append(cons(chars, pop(1, "ERL_DRV_STRING_CONS")[0]))
        elif op == ERL_DRV_TUPLE:
            stack.append(tuple(pop(arg("the tuple size"), "ERL_DRV_TUPLE")))
        elif op == ERL_DRV_LIST:
            n = arg("the list length")
            if not isinstance(n, int) or n < 1:
                raise SpecError("ERL_DRV_LIST needs at least the tail")
            *items, tail = pop(n, "ERL_DRV_LIST")
            stack.append(cons(items, tail))
        elif op == ERL_DRV_MAP:
            n = arg("the map size")
            kv = pop(2 * n if isinstance(n, int) else -1, "ERL_DRV_MAP")
            m = dict(zip(kv[0::2], kv[1::2], strict=True))
            if len(m) != n:
                raise SpecError("ERL_DRV_MAP with equal keys")
            stack.append(m)
        elif op == ERL_DRV_EXT2TERM:
            b = data("the external term")
            n = count("the length", len(b))
            try:
                stack.append(decode(b[:n]))
            except ValueError as e:
                raise SpecError(f"ERL_DRV_EXT2TERM: {e}") from None
        else:
            raise SpecError(f"unknown spec operation {op!r}")
    if len(stack) != 1:
        raise SpecError(f"the spec builds {len(stack)} terms, not one")
    return stack[0]

