"""The indices of atoms in the node's atom table, which term_to_binary's order of a map of
more than 32 keys depends on when its keys hold atoms (pybridge._maphash): asked of the
driver (DRV_MK_ATOM: driver_mk_atom, no Erlang process involved) through the port whose
reply needs them, and kept for the worker's life, as an atom's index never changes.
"""
from __future__ import annotations

import struct
from typing import Protocol

from .._errors import WorkerError
from .._wire import protocol as P

_TAG_MASK, _TAG_ATOM, _TAG_BITS = 0x3F, 0xB, 6   # an atom's term: its index above 0b001011
_WORD = struct.Struct(">Q")
_FRAME_HEAD = 6                                   # a frame's len counts op, fl, id and body


class Asker(Protocol):
    """The port whose reply waits for the indices (_runtime.conn.Conn)."""

    def ask(self, op: int, body: bytes = b"") -> tuple[int, bytes]: ...


class AtomTable:
    """The indices learned so far; `get` is the encoder's atom_index."""

    def __init__(self, max_frame: int) -> None:
        self.index: dict[str, int] = {}
        self.get = self.index.get
        self.room = max_frame - _FRAME_HEAD

    def learn(self, port: Asker, names: list[str]) -> bool:
        """Ask the node, through port, for the indices of names (making the atoms that do
        not exist yet: the reply being encoded makes them anyway). False when nothing was
        learned: the map keeps dict order, the reply goes out all the same."""
        learned = False
        for batch in self.batches([n for n in names if _nameable(n)]):
            body = b"".join(bytes((len(n),)) + n.encode("latin-1") for n in batch)
            try:
                status, data = port.ask(P.DRV_MK_ATOM, body)
            except WorkerError:
                return learned
            if status or len(data) != 8 * len(batch):
                return learned
            for name, (word,) in zip(batch, _WORD.iter_unpack(data), strict=True):
                if word & _TAG_MASK == _TAG_ATOM:
                    self.index[name] = word >> _TAG_BITS
                    learned = True
        return learned

    def batches(self, names: list[str]) -> list[list[str]]:
        """names cut so that each request and its answer fit in a frame (one batch unless
        max_frame is tiny)."""
        out: list[list[str]] = []
        batch: list[str] = []
        size = 0
        for n in names:
            if batch and (size + 1 + len(n) > self.room or 1 + 8 * (len(batch) + 1) > self.room):
                out.append(batch)
                batch, size = [], 0
            if 1 + len(n) <= self.room and 9 <= self.room:
                batch.append(n)
                size += 1 + len(n)
        if batch:
            out.append(batch)
        return out


def _nameable(name: str) -> bool:
    # driver_mk_atom reads a C string as Latin-1: no NUL, no character above U+00FF
    return "\0" not in name and all(ord(c) < 256 for c in name)
