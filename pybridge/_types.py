"""Python types that stand for Erlang terms without a natural Python equivalent.

Atoms, improper lists and the hashable stand-ins used when an Erlang map has
a list or a map as a key.  Pids, port identifiers, references, funs and bit strings
are erlang-py's classes, re-exported under shorter names (PortId: a port as a term, not
the handle pybridge.Port).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, cast

from erlang import OtpErlangBinary as BitString
from erlang import OtpErlangFunction as Function
from erlang import OtpErlangPid as Pid
from erlang import OtpErlangPort as PortId
from erlang import OtpErlangReference as Reference

__all__ = [
    "Atom", "ImproperList", "ImproperListKey", "ListKey", "MapKey",
    "Pid", "PortId", "Reference", "Function", "BitString",
    "DecodeError", "EncodeError",
]


#: An Erlang term as pybridge maps it to Python (see pybridge.encode and decode): int, float,
#: str, bytes, bool, None, Atom, tuple, list, dict, ImproperList, ListKey, MapKey and
#: erlang-py's classes, nested. Too open for a useful static union, so it is Any.
Term = Any


class DecodeError(ValueError):
    """The data is not a valid External Term Format encoding."""


class EncodeError(TypeError):
    """The Python value has no Erlang counterpart."""


class Atom:
    """An Erlang atom.  Never equal to a str, so atoms and binaries stay distinct."""

    __slots__ = ("name",)
    name: str

    def __init__(self, name: str | bytes | bytearray) -> None:
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("utf-8")
        elif not isinstance(name, str):
            raise TypeError(f"atom name must be str or bytes, not {type(name).__name__}")
        # Atoms are hashable, so they must not change after construction.
        object.__setattr__(self, "name", name)

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError("Atom is immutable")

    def __reduce__(self) -> tuple[type[Atom], tuple[str]]:
        # The default slot-based pickling would go through __setattr__.
        return (Atom, (self.name,))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Atom):
            return self.name == other.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Atom, self.name))

    def __repr__(self) -> str:
        return f"Atom({self.name!r})"

    def __str__(self) -> str:
        return self.name


class ImproperList:
    """An Erlang list whose tail is not []: [items... | tail]."""

    __slots__ = ("items", "tail")
    items: list[Term]
    tail: Term

    def __init__(self, items: Iterable[Term], tail: Term) -> None:
        self.items = list(items)
        self.tail = tail

    def __eq__(self, other: object) -> bool:
        # An ImproperList never equals its hashable ImproperListKey form.
        if type(other) is not type(self):
            return NotImplemented
        return self.items == other.items and self.tail == other.tail

    # items is a mutable list; ImproperListKey is the hashable form. mypy (as typeshed for
    # list) needs the ignore to replace object's __hash__ method by None.
    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items!r}, {self.tail!r})"


class ImproperListKey(ImproperList):
    """Hashable ImproperList (items kept as a tuple), used for map keys."""

    __slots__ = ()
    # The hashable form holds a tuple where ImproperList holds a list.
    items: tuple[Term, ...]  # type: ignore[assignment]

    def __init__(self, items: Iterable[Term], tail: Term) -> None:
        self.items = tuple(items)
        self.tail = tail

    def __hash__(self) -> int:  # type: ignore[override]  # hashable, unlike its base
        return hash((ImproperListKey, self.items, self.tail))


class ListKey(tuple[Term, ...]):
    """Hashable stand-in for an Erlang list used as a map key; encodes as a list.

    Only equal to another ListKey: the tuple (1, 2) is the Erlang tuple {1,2},
    a different map key from the list [1,2].
    """

    __slots__ = ()

    # Answer for plain tuples too: NotImplemented would fall back to tuple's
    # own comparison, which would call them equal.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return isinstance(other, ListKey) and tuple.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return not isinstance(other, ListKey) or tuple.__ne__(self, other)
        return NotImplemented

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"ListKey({list(self)!r})"


class MapKey:
    """Hashable stand-in for an Erlang map used as a map key; encodes as a map.

    `items` is a tuple of (key, value) pairs whose values must be hashable.
    """

    __slots__ = ("items",)
    items: tuple[tuple[Term, Term], ...]

    def __init__(self, mapping: dict[Term, Term] | Iterable[tuple[Term, Term]] = ()) -> None:
        pairs = mapping.items() if isinstance(mapping, dict) else mapping
        self.items = tuple((k, v) for k, v in pairs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MapKey):
            return frozenset(self.items) == frozenset(other.items)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self.items))

    def __repr__(self) -> str:
        return f"MapKey({dict(self.items)!r})"


class PortHandle:
    """Base of pybridge.Port: in a term, the port itself (ERL_DRV_PORT in a term program)."""

    __slots__ = ()


class LocalPid(Pid):  # type: ignore[misc]  # Pid is erlang-py's, untyped: Any to mypy
    """A pid the driver named by its raw value (caller, connected): an erlang-py pid
    whose external form is made from the raw value when it is needed (encoding, comparing
    with other pids, hashing) by the worker (_runtime.pids), without asking the node."""

    __slots__ = ("raw", "origin", "_resolve", "_pid")

    def __init__(self, raw: int, resolve: Callable[[int], Pid], origin: object = None) -> None:
        self.raw = raw
        self.origin = origin        # the handle of the port that named it: raw means
        # something only there
        self._resolve = resolve
        self._pid: Pid | None = None

    def _real(self) -> Pid:
        if self._pid is None:
            self._pid = self._resolve(self.raw)
        return self._pid

    node = property(lambda self: self._real().node)
    id = property(lambda self: self._real().id)
    serial = property(lambda self: self._real().serial)
    creation = property(lambda self: self._real().creation)

    def binary(self) -> bytes:
        return cast(bytes, self._real().binary())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LocalPid) and other._resolve == self._resolve:
            return other.raw == self.raw
        return isinstance(other, Pid) and self.binary() == other.binary()

    def __hash__(self) -> int:
        return hash(self.binary())

    def __repr__(self) -> str:
        return repr(self._pid) if self._pid is not None else f"LocalPid({self.raw:#x})"
