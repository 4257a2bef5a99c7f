"""The Driver base class and the port handle given to each instance as ``self.port``.

Callbacks keep driver_entry names; port handle methods keep erl_driver names without
the ``driver_`` / ``erl_drv_`` prefix.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _protocol as P
from ._types import Pid

if TYPE_CHECKING:
    from ._worker import Conn

PORT_CONTROL_FLAG_BINARY = 1
PORT_CONTROL_FLAG_HEAVY = 2


class Port:
    """The port an instance serves: what a C driver reaches through its ErlDrvPort."""

    __slots__ = ("_conn",)

    def __init__(self, conn: "Conn") -> None:
        self._conn = conn

    def output(self, data: bytes) -> None:
        """driver_output: ``{Port, {data, Data}}`` to the connected process."""
        self._conn.send(P.OP_OUTPUT_DATA, bytes(data))

    def set_port_control_flags(self, flags: int) -> None:
        """set_port_control_flags: PORT_CONTROL_FLAG_BINARY makes control replies binaries."""
        self._conn.control_flags = flags & PORT_CONTROL_FLAG_BINARY
        self._conn.send(P.OP_SET_CONTROL_FLAGS, P.U32.pack(flags & 0xFFFFFFFF))

    def caller(self) -> Pid:
        """driver_caller: the pid behind the callback running now."""
        return self._conn.local_pid(self._conn.caller_raw)

    def connected(self) -> Pid:
        """driver_connected: the port's connected process (its owner, or per port_connect)."""
        return self._conn.local_pid(self._conn.connected_raw)

    @property
    def timeout(self) -> int:
        """Milliseconds Erlang waits for control / call / start on this port."""
        return self._conn.timeout_ms

    def __repr__(self) -> str:
        return f"<pybridge.Port {self._conn.port_raw:#x}>"


class Driver:
    """Subclass this; one instance serves one port.

    Define only the callbacks you need. A callback you leave out behaves like a NULL
    field in a C driver_entry: no ``control`` or ``call`` means badarg in Erlang.
    ``output(data)`` is used when the class has no ``outputv(iov)``.
    """

    #: the atom Python's None maps to and from ("nil" suits Elixir)
    none_atom = "undefined"

    port: Port

    def start(self, command: str) -> None:
        """Called before open_port returns; ``command`` is the text after the spec."""

    def stop(self) -> None:
        """Called when the port closes."""
