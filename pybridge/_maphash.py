"""The order in which OTP 25's term_to_binary/1 writes the pairs of a map of more than 32 keys.

OTP keeps such a map as a HAMT (hash array mapped trie) keyed by its internal hash of the
keys (make_internal_hash in erts/emulator/beam/utils.c, salt 0): each trie level takes the
next 4 bits of the hash, lowest first; keys whose 32-bit hashes are equal are rehashed for
the 8 levels below (make_internal_hash salted with _ROUND1_SALT, as the node's own tries
show: erts_internal:map_hashmap_children of maps holding such keys; a collision of both
hashes, 64 bits, is left to the node: `order` returns None). term_to_binary walks every
node's children from the highest slot down, a key before its value. So the pairs come
out in descending order of the hash read as a string of nibbles, lowest nibble first; this
module computes that hash for the keys pybridge encodes.

The hash of an atom is the hash of its index in the node's atom table, and that of a pid or
port the hash of its in-VM word: both are known only to the node. `order` returns None when
a key holds an atom whose index `atom_index` cannot tell, or a pid, port, reference or fun
other than a LocalPid (whose raw value is its word); the caller then keeps its own order.
`atoms` names the atoms of the keys, for the caller to learn their indices from the node.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import erlang

from ._types import Atom, ImproperList, ListKey, LocalPid, MapKey, Term

__all__ = ["NodeFacts", "atoms", "internal_hash", "order"]

_M = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9            # HCONST
_SALT = 3432918353              # INTERNAL_HASH_SALT, xor-ed with the caller's salt
_C4, _C7, _C8 = 0x78DDE6E4, 0x5384540F, 0xF1BBCDC8  # HCONST_4 (strings), _7/_8 (refs)
_C9, _C10, _C11 = 0x8FF34781, 0x2E2AC13A, 0xCC623AF3  # tuples, negative, positive bignums
_C12, _C13, _C15 = 0x6A99B4AC, 0x08D12E65, 0x454021D7  # floats, binaries, bitstring tails
_C16, _C17, _C18 = 0xE3779B90, 0x81AF1549, 0x1FE68F02  # map sizes, list head, list tail
_C22 = 0x98C475E6               # the last 1..3 bytes of a string
_NIL_WORD = 0x3B
# the salt of the rehash at level 8: the hash of a one-byte string [1] from 0
# (UINT32_HASH_2(1, 1, HCONST_22)), tests/python/test_big_maps.py and
# erlang/test/pybridge_big_maps_tests.erl check it against the node
_ROUND1_SALT = 0x870EEE9A
_SMALL_MIN, _SMALL_MAX = -(1 << 59), (1 << 59) - 1  # a 64-bit VM's immediate integers
_FLATMAP_LIMIT = 32

AtomIndex = Callable[[str], "int | None"]  # an atom's index in the node's atom table
TermKey = Callable[[Term], Any]


class _Unknown(Exception):
    """A key whose hash only the node knows."""


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    # Bob Jenkins' lookup2 mix on 32-bit words
    a = ((a - b - c) & _M) ^ (c >> 13)
    b = ((b - c - a) & _M) ^ ((a << 8) & _M)
    c = ((c - a - b) & _M) ^ (b >> 13)
    a = ((a - b - c) & _M) ^ (c >> 12)
    b = ((b - c - a) & _M) ^ ((a << 16) & _M)
    c = ((c - a - b) & _M) ^ (b >> 5)
    a = ((a - b - c) & _M) ^ (c >> 3)
    b = ((b - c - a) & _M) ^ ((a << 10) & _M)
    return a, b, ((c - a - b) & _M) ^ (b >> 15)


def _h2(h: int, x: int, y: int, const: int) -> int:
    return _mix((const + x) & _M, (const + y) & _M, h)[2]


def _word(h: int, word: int) -> int:
    # an immediate (small integer, atom, nil, local pid/port) hashes as its 64-bit word
    word &= 0xFFFFFFFFFFFFFFFF
    return _h2(h, word & _M, word >> 32, _GOLDEN)


def _block(data: bytes, init: int) -> int:
    """The hash of a binary's bytes (lookup2 over 12-byte blocks)."""
    a = b = _GOLDEN
    c = init
    n = len(data)
    full = n - n % 12
    for x, y, z in struct.iter_unpack("<III", data[:full]):
        a, b, c = _mix((a + x) & _M, (b + y) & _M, (c + z) & _M)
    x, y, z = struct.unpack("<III", data[full:] + bytes(12 - (n - full)))
    # the last bytes go to a, b and the high three bytes of c, whose low byte has the length
    return _mix((a + x) & _M, (b + y) & _M, (c + n + (z << 8)) & _M)[2]


class _Rest:
    """The cons cells of a list from `start` on (the stack holds these, as ERTS holds CDRs)."""

    __slots__ = ("items", "start", "tail")

    def __init__(self, items: Sequence[Term], start: int, tail: Term) -> None:
        self.items, self.start, self.tail = items, start, tail


_CDR = object()       # HASH_CDR: an improper tail comes next
_NIL = _Rest((), 0, None)


class _Node:
    """A HAMT node: `head` nodes hash their size; a full non-head node is a 16-tuple."""

    __slots__ = ("head", "size", "children")

    def __init__(self, head: bool, size: int, children: list[Any]) -> None:
        self.head, self.size, self.children = head, size, children


class _Hasher:
    def __init__(self, none: str, atom_index: AtomIndex | None, term_key: TermKey,
                 node_facts: NodeFacts | None = None) -> None:
        self.none = none
        self.atom_index = atom_index
        self.node_facts = node_facts
        self.term_key = term_key  # sorts keys in Erlang's term order

    def atom(self, h: int, name: str) -> int:
        index = self.atom_index(name) if self.atom_index is not None else None
        if index is None:
            raise _Unknown
        return _word(h, (index << 6) | 0xB)

    def rehash(self, key: Term, round_: int) -> int:
        """The hash of key at levels 8 * round_ to 8 * round_ + 7."""
        if round_ > 1:
            raise _Unknown
        return self.hash(key, _ROUND1_SALT if round_ else 0)

    def hash(self, term: Term, salt: int) -> int:
        h = (salt ^ _SALT) & _M
        stack: list[Any] = []
        t: Any = term
        while True:
            h, t = self.step(h, t, stack)
            if t is not _CDR:
                continue
            while True:
                if not stack:
                    return h
                t = stack.pop()
                if t is _CDR:
                    h = _rotl17(h ^ _C18)
                else:
                    break

    def step(self, h: int, t: Any, stack: list[Any]) -> tuple[int, Any]:
        """Hash t (or its first part, pushing the rest); return the hash and the next term,
        or _CDR when the stack must be popped."""
        tt = type(t)
        if tt is int:
            if _SMALL_MIN <= t <= _SMALL_MAX:
                return _word(h, (t << 4) | 0xF), _CDR
            mag, const = (-t, _C10) if t < 0 else (t, _C11)
            while True:
                h = _h2(h, mag & _M, (mag >> 32) & _M, const)
                mag >>= 64
                if not mag:
                    return h, _CDR
        if tt is Atom:
            return self.atom(h, t.name), _CDR
        if tt is bool:
            return self.atom(h, "true" if t else "false"), _CDR
        if t is None:
            return self.atom(h, self.none), _CDR
        if tt is str:
            return self.binary(h, t.encode("utf-8"), 0), _CDR
        if isinstance(t, (bytes, bytearray, memoryview)):
            return self.binary(h, bytes(t), 0), _CDR
        if tt is float:
            bits = struct.unpack("<Q", struct.pack("<d", t or 0.0))[0]
            return _h2(h, bits & _M, bits >> 32, _C12), _CDR
        if isinstance(t, (ListKey, list)):
            return (_word(h, _NIL_WORD), _CDR) if not t else (h, _Rest(t, 0, []))
        if tt is _Rest:
            return self.cons(h, t, stack)
        if isinstance(t, ImproperList):
            return h, _Rest(t.items, 0, t.tail)
        if isinstance(t, tuple):
            h = _h2(h, len(t), 0, _C9)
            if not t:
                return h, _CDR
            stack.extend(reversed(t[1:]))
            return h, t[0]
        if isinstance(t, (dict, MapKey)):
            return self.map(h, list(t.items() if isinstance(t, dict) else t.items), stack)
        if tt is _Node:
            return self.node(h, t, stack)
        return self.other(h, t), _CDR

    def cons(self, h: int, r: _Rest, stack: list[Any]) -> tuple[int, Any]:
        items, i, n = r.items, r.start, len(r.items)
        c = sh = 0
        while i < n and type(items[i]) is int and 0 <= items[i] <= 255:
            sh = (sh << 8) + items[i]
            if c == 3:
                h = _h2(h, sh, 0, _C4)
                c = sh = 0
            else:
                c += 1
            i += 1
        if c:
            h = _h2(h, sh, c, _C22)
        if i == n:  # the tail: [] or an improper tail
            t = r.tail
            return (_word(h, _NIL_WORD), _CDR) if isinstance(t, list) and not t else (h, t)
        h = _rotl17(h ^ _C17)
        if i + 1 < n:
            stack.append(_Rest(items, i + 1, r.tail))
        else:
            stack.append(r.tail)
            if not (isinstance(r.tail, list) and r.tail):
                stack.append(_CDR)
        return h, items[i]

    def binary(self, h: int, data: bytes, bits: int) -> int:
        con = (_C13 + h) & _M
        if not data:
            return con
        if not bits:
            return _block(data, con)
        h = _block(data[:-1], con)
        return _h2(h, bits, data[-1] >> (8 - bits), _C15)

    def map(self, h: int, pairs: list[tuple[Term, Term]], stack: list[Any]) -> tuple[int, Any]:
        h = _h2(h, len(pairs), 0, _C16)
        if not pairs:
            return h, _CDR
        if len(pairs) <= _FLATMAP_LIMIT:
            pairs = sorted(pairs, key=lambda kv: self.term_key(kv[0]))  # a flatmap's order
            for k, v in reversed(pairs):
                stack.append(v)
                stack.append(k)
            return h, _CDR
        root = self.build([(self.hash(k, 0), k, v) for k, v in pairs], 0)
        assert isinstance(root, _Node)
        return self.children(h, root, stack)

    def children(self, h: int, node: _Node, stack: list[Any]) -> tuple[int, Any]:
        for child in node.children:
            if type(child) is tuple:  # a leaf: [Key | Value]
                stack.append(child[1])
                stack.append(child[0])
            else:
                stack.append(child)
        return h, _CDR

    def node(self, h: int, node: _Node, stack: list[Any]) -> tuple[int, Any]:
        if len(node.children) < 16:
            return self.children(h, node, stack)
        # a full inner node is a 16-tuple whose leaves are cons cells, hashed as such
        h = _h2(h, 16, 0, _C9)
        stack.extend(reversed([_leaf_cons(c) for c in node.children[1:]]))
        return h, _leaf_cons(node.children[0])

    def build(self, entries: list[tuple[int, Term, Term]], level: int) -> Any:
        """The HAMT node holding entries (hash for level's round, key, value) at level."""
        if len(entries) == 1 and level:
            return entries[0][1], entries[0][2]
        if level and not level % 8:
            entries = [(self.rehash(k, level >> 3), k, v) for _, k, v in entries]
        shift = 4 * (level % 8)
        slots: dict[int, list[tuple[int, Term, Term]]] = {}
        for e in entries:
            slots.setdefault((e[0] >> shift) & 0xF, []).append(e)
        return _Node(level == 0, len(entries),
                     [self.build(slots[i], level + 1) for i in sorted(slots)])

    def other(self, h: int, t: Any) -> int:
        if isinstance(t, LocalPid):
            return _word(h, t.raw)
        if isinstance(t, erlang.OtpErlangAtom):
            v = t.value
            return self.atom(h, v.decode("latin-1") if isinstance(v, bytes) else str(v))
        if isinstance(t, erlang.OtpErlangBinary):
            return self.binary(h, t.value, 0 if t.bits == 8 else t.bits)
        if isinstance(t, int):
            return int(self.step(h, int(t), [])[0])  # an int subclass: as the int
        node = self.node_facts
        if node is None or not isinstance(t, _NODE_TERMS) or not node.local(t):
            raise _Unknown  # another node's: ERTS hashes the address of its node entry
        number = int.from_bytes(t.id, "big")
        if isinstance(t, erlang.OtpErlangReference):
            if len(t.id) != 12:
                raise _Unknown
            n0, n1, n2 = struct.unpack(">III", t.id)
            return _h2(_h2(h, n0, 0, _C7), n1, n2, _C8)
        if isinstance(t, erlang.OtpErlangPid):
            data = (int.from_bytes(t.serial, "big") << 15) | number
            return _word(h, _table_word(data, node.process_limit, 0x3))
        return _word(h, _table_word(number, node.port_limit, 0x7))


_NODE_TERMS = (erlang.OtpErlangPid, erlang.OtpErlangPort, erlang.OtpErlangReference)


class NodeFacts:
    """What the hash of a local pid, port or reference needs of the running node: its name
    and creation (the pid is local when both match) and the sizes of its process and port
    tables (erlang:system_info(process_limit), port_limit), which lay out the in-VM word."""

    def __init__(self, name: str, creation: int, process_limit: int, port_limit: int) -> None:
        self.name, self.creation = name, creation
        self.process_limit, self.port_limit = process_limit, port_limit

    def local(self, t: Any) -> bool:
        v = t.node.value
        name = v.decode("latin-1") if isinstance(v, bytes) else str(v)
        return name == self.name and int.from_bytes(t.creation, "big") == self.creation


def _table_word(data: int, limit: int, tag: int) -> int:
    """The in-VM word of a local pid or port: its data above the tag, and in the high half
    its slot in the process or port table, whose low bits are spread over cache lines."""
    bits = max(limit - 1, 1).bit_length()
    per_line = 3  # 64-byte cache lines of 8-byte slots
    line_bits = bits - per_line
    slot = ((data & ((1 << line_bits) - 1)) << per_line) + ((data >> line_bits) & 7)
    return (slot << 32) | ((data << 4) & _M) | tag


def _leaf_cons(child: Any) -> Any:
    if type(child) is not tuple:
        return child
    k, v = child
    if isinstance(v, (list, ListKey)) and v:
        return _Rest([k, *v], 0, [])
    if isinstance(v, ImproperList):
        return _Rest([k, *v.items], 0, v.tail)
    return _Rest([k], 0, v)


def _rotl17(h: int) -> int:
    return ((h << 17) & _M) | (h >> 15)


def _nibbles(h: int) -> int:
    # the hash with its nibbles reversed: its first trie slot becomes the most significant
    r = 0
    for _ in range(8):
        r = (r << 4) | (h & 0xF)
        h >>= 4
    return r


def internal_hash(term: Term, none: str, atom_index: AtomIndex | None, term_key: TermKey,
                  node_facts: NodeFacts | None = None, salt: int = 0) -> int | None:
    """OTP 25's make_internal_hash(term, salt), or None when only the node knows it."""
    try:
        return _Hasher(none, atom_index, term_key, node_facts).hash(term, salt)
    except _Unknown:
        return None


def order(pairs: list[tuple[Term, Term]], none: str, atom_index: AtomIndex | None,
          term_key: TermKey, node_facts: NodeFacts | None) -> list[tuple[Term, Term]] | None:
    """The pairs of a map of more than 32 keys in term_to_binary's order, or None when
    a key's hash is known only to the node."""
    hasher = _Hasher(none, atom_index, term_key, node_facts)
    try:
        return _in_hash_order(list(pairs), hasher, 0)
    except _Unknown:
        return None


def _in_hash_order(pairs: list[tuple[Term, Term]], hasher: _Hasher,
              round_: int) -> list[tuple[Term, Term]]:
    """pairs in descending order of their hash of round_; keys whose whole 32-bit hash
    collides are ordered by their hash of the next round (round 0: the key's own hash)."""
    keyed = sorted(((_nibbles(hasher.rehash(k, round_)), k, v) for k, v in pairs),
                   key=lambda e: e[0], reverse=True)
    out: list[tuple[Term, Term]] = []
    i = 0
    while i < len(keyed):
        j = i + 1
        while j < len(keyed) and keyed[j][0] == keyed[i][0]:
            j += 1
        group = [(k, v) for _, k, v in keyed[i:j]]
        out.extend(group if len(group) == 1 else _in_hash_order(group, hasher, round_ + 1))
        i = j
    return out


def atoms(terms: Iterable[Term], none: str) -> set[str]:
    """The names of the atoms in terms (None counts as the atom none)."""
    names: set[str] = set()
    stack = list(terms)
    while stack:
        t = stack.pop()
        if isinstance(t, Atom):
            names.add(t.name)
        elif isinstance(t, bool):
            names.add("true" if t else "false")
        elif t is None:
            names.add(none)
        elif isinstance(t, (str, bytes, bytearray, memoryview, int, float)):
            continue
        elif isinstance(t, (tuple, list)):  # ListKey too
            stack.extend(t)
        elif isinstance(t, ImproperList):
            stack.extend(t.items)
            stack.append(t.tail)
        elif isinstance(t, (dict, MapKey)):
            for k, v in (t.items() if isinstance(t, dict) else t.items):
                stack.append(k)
                stack.append(v)
        elif isinstance(t, erlang.OtpErlangAtom):
            v = t.value
            names.add(v.decode("latin-1") if isinstance(v, bytes) else str(v))
    return names
