"""The external form of a pid the driver names by its raw value (docs/PROTOCOL.md, "Pids"),
made here from that value: no message to the node, no wait, so pids compare, hash and go
back to Erlang in any callback, a blocking control or call included.

A local pid's raw value is its ERTS term, an immediate: on 64-bit ERTS (OTP 25) its low
32 bits are the pid's data above the 4-bit tag 0b0011, the number in the data's low 15
bits and the serial in the 13 above (the high 32 bits index the process table, which the
external form does not carry). The node's name and creation, the rest of NEW_PID_EXT,
come from a pid whose raw value and external form are both known: pybridge_manager's, on
the worker's command line, then the opener of each open and the caller of each wrapped
request, so a node that became distributed is seen with its new name. Each such pair
checks the layout too: an ERTS that lays pids out otherwise is reported once, and its
pids compare only with each other (by raw value). The same name and creation tell the
encoder which pids, ports and references are this node's (NodeFacts: their hashes order
a big map's keys as term_to_binary does).
"""
from __future__ import annotations

import logging

from .._errors import WorkerError
from .._maphash import NodeFacts
from .._types import LocalPid, Pid

log = logging.getLogger("pybridge")

_TAG_MASK, _TAG_PID = 0xF, 0x3
_NUMBER_BITS = 15
_BE4 = 4


def _number_serial(raw: int) -> tuple[int, int]:
    data = (raw & 0xFFFFFFFF) >> 4
    return data & ((1 << _NUMBER_BITS) - 1), data >> _NUMBER_BITS


class Node:
    """This node's name and creation, as its pids' external forms carry them."""

    def __init__(self, limits: tuple[int, int] = (0, 0)) -> None:
        self.name: object = None        # an erlang-py atom, as decoded
        self.creation = b""
        self.broken = ""                # why pids cannot be made here, once seen
        # the encoder's, given the node's process and port limits (none: not told them)
        self.facts = NodeFacts("", -1, *limits) if all(limits) else None

    def learn(self, raw: int, pid: object) -> None:
        """A pid the driver named raw, in its external form: the node's name and creation,
        and a check of the layout."""
        if not isinstance(pid, Pid) or isinstance(pid, LocalPid) or self.broken:
            return
        ours = _number_serial(raw)
        theirs = (int.from_bytes(pid.id, "big"), int.from_bytes(pid.serial, "big"))
        if raw & _TAG_MASK != _TAG_PID or ours != theirs:
            self.broken = (f"this ERTS lays pids out in a way pybridge does not know (raw "
                           f"{raw:#x} is {theirs}): pids named by the driver compare only "
                           f"with each other")
            log.error("pybridge: %s", self.broken)
            return
        self.name, self.creation = pid.node, pid.creation
        if self.facts is not None:
            v = pid.node.value
            self.facts.name = v.decode("latin-1") if isinstance(v, bytes) else str(v)
            self.facts.creation = int.from_bytes(pid.creation, "big")

    def pid(self, raw: int) -> Pid:
        """The external form of the local pid whose raw value is raw."""
        if self.name is None:
            raise WorkerError(self.broken or "no pid of this node is known yet")
        number, serial = _number_serial(raw)
        return Pid(self.name, number.to_bytes(_BE4, "big"), serial.to_bytes(_BE4, "big"),
                   self.creation)
