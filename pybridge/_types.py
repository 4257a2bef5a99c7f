"""Python types that stand for Erlang terms without a natural Python equivalent.

Atoms, improper lists and the hashable stand-ins used when an Erlang map has
a list or a map as a key.  Pids, ports, references, funs and bit strings are
erlang-py's classes, re-exported under shorter names.
"""
from erlang import OtpErlangBinary as BitString
from erlang import OtpErlangFunction as Function
from erlang import OtpErlangPid as Pid
from erlang import OtpErlangPort as Port
from erlang import OtpErlangReference as Reference

__all__ = [
    "Atom", "ImproperList", "ImproperListKey", "ListKey", "MapKey",
    "Pid", "Port", "Reference", "Function", "BitString",
    "DecodeError", "EncodeError",
]


class DecodeError(ValueError):
    """The data is not a valid External Term Format encoding."""


class EncodeError(TypeError):
    """The Python value has no Erlang counterpart."""


class Atom:
    """An Erlang atom.  Never equal to a str, so atoms and binaries stay distinct."""

    __slots__ = ("name",)

    def __init__(self, name):
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("utf-8")
        elif not isinstance(name, str):
            raise TypeError(f"atom name must be str or bytes, not {type(name).__name__}")
        # Atoms are hashable, so they must not change after construction.
        object.__setattr__(self, "name", name)

    def __setattr__(self, attr, value):
        raise AttributeError("Atom is immutable")

    def __reduce__(self):
        # The default slot-based pickling would go through __setattr__.
        return (Atom, (self.name,))

    def __eq__(self, other):
        if isinstance(other, Atom):
            return self.name == other.name
        return NotImplemented

    def __hash__(self):
        return hash((Atom, self.name))

    def __repr__(self):
        return f"Atom({self.name!r})"

    def __str__(self):
        return self.name


class ImproperList:
    """An Erlang list whose tail is not []: [items... | tail]."""

    __slots__ = ("items", "tail")

    def __init__(self, items, tail):
        self.items = list(items)
        self.tail = tail

    def __eq__(self, other):
        # An ImproperList never equals its hashable ImproperListKey form.
        if type(other) is not type(self):
            return NotImplemented
        return self.items == other.items and self.tail == other.tail

    __hash__ = None  # items is a mutable list; ImproperListKey is the hashable form

    def __repr__(self):
        return f"{type(self).__name__}({self.items!r}, {self.tail!r})"


class ImproperListKey(ImproperList):
    """Hashable ImproperList (items kept as a tuple), used for map keys."""

    __slots__ = ()

    def __init__(self, items, tail):
        self.items = tuple(items)
        self.tail = tail

    def __hash__(self):
        return hash((ImproperListKey, self.items, self.tail))


class ListKey(tuple):
    """Hashable stand-in for an Erlang list used as a map key; encodes as a list.

    Only equal to another ListKey: the tuple (1, 2) is the Erlang tuple {1,2},
    a different map key from the list [1,2].
    """

    __slots__ = ()

    # Answer for plain tuples too: NotImplemented would fall back to tuple's
    # own comparison, which would call them equal.
    def __eq__(self, other):
        if isinstance(other, tuple):
            return isinstance(other, ListKey) and tuple.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other):
        if isinstance(other, tuple):
            return not isinstance(other, ListKey) or tuple.__ne__(self, other)
        return NotImplemented

    __hash__ = tuple.__hash__

    def __repr__(self):
        return f"ListKey({list(self)!r})"


class MapKey:
    """Hashable stand-in for an Erlang map used as a map key; encodes as a map.

    `items` is a tuple of (key, value) pairs whose values must be hashable.
    """

    __slots__ = ("items",)

    def __init__(self, mapping=()):
        pairs = mapping.items() if isinstance(mapping, dict) else mapping
        self.items = tuple((k, v) for k, v in pairs)

    def __eq__(self, other):
        if isinstance(other, MapKey):
            return frozenset(self.items) == frozenset(other.items)
        return NotImplemented

    def __hash__(self):
        return hash(frozenset(self.items))

    def __repr__(self):
        return f"MapKey({dict(self.items)!r})"


class LocalPid(Pid):
    """A pid the driver named by its raw value (caller, connected): an erlang-py pid
    whose external form is fetched from the node only when it is needed (encoding,
    comparing with other pids, hashing), so asking for it never blocks a callback."""

    __slots__ = ("raw", "origin", "_resolve", "_pid")

    def __init__(self, raw: int, resolve, origin: object = None) -> None:
        self.raw = raw
        self.origin = origin        # the port that named it: only there is raw meaningful
        self._resolve = resolve
        self._pid = None

    def _real(self) -> Pid:
        if self._pid is None:
            self._pid = self._resolve(self.raw)
        return self._pid

    node = property(lambda self: self._real().node)
    id = property(lambda self: self._real().id)
    serial = property(lambda self: self._real().serial)
    creation = property(lambda self: self._real().creation)

    def binary(self) -> bytes:
        return self._real().binary()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LocalPid) and other._resolve == self._resolve:
            return other.raw == self.raw
        return isinstance(other, Pid) and self.binary() == other.binary()

    def __hash__(self) -> int:
        return hash(self.binary())

    def __repr__(self) -> str:
        return repr(self._pid) if self._pid is not None else f"LocalPid({self.raw:#x})"
