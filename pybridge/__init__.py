"""pybridge: write Erlang port drivers in Python.

Subclass :class:`Driver`; open it from Erlang with ``pybridge:open("module:Class", Opts)``
or ``open_port({spawn_driver, "pybridge module:Class args"}, Opts)``. This module only
re-exports the public API: the driver API (pybridge._api), the term types (pybridge._types)
and the exceptions (pybridge._errors).
"""
from ._api.driver import (
    ERL_DRV_FLAG_NO_BUSY_MSGQ,
    ERL_DRV_FLAG_SOFT_BUSY,
    ERL_DRV_FLAG_USE_PORT_LOCKING,
    PORT_CONTROL_FLAG_BINARY,
    PORT_CONTROL_FLAG_HEAVY,
    SELECT_READ,
    SELECT_USE,
    SELECT_WRITE,
    Driver,
    Monitor,
    Port,
)
from ._errors import BadArg, ErlangError, PybridgeError, Timeout, WorkerError
from ._types import (
    Atom,
    BitString,
    DecodeError,
    EncodeError,
    Function,
    ImproperList,
    ListKey,
    MapKey,
    Pid,
    PortId,
    Reference,
)
from ._version import __version__

__all__ = [
    "Driver", "Port", "Monitor", "PORT_CONTROL_FLAG_BINARY", "PORT_CONTROL_FLAG_HEAVY",
    "SELECT_READ", "SELECT_WRITE", "SELECT_USE",
    "ERL_DRV_FLAG_USE_PORT_LOCKING", "ERL_DRV_FLAG_SOFT_BUSY", "ERL_DRV_FLAG_NO_BUSY_MSGQ",
    "BadArg", "ErlangError", "PybridgeError", "Timeout", "WorkerError",
    "Atom", "ImproperList", "ListKey", "MapKey", "Pid", "PortId", "Reference", "Function",
    "BitString", "DecodeError", "EncodeError", "__version__",
]

# Public classes say where users find them, as trio's do: a traceback, repr() and the
# {python, Class, ...} error Erlang gets name pybridge.Timeout, not pybridge._errors.Timeout.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("pybridge."):
        _obj.__module__ = "pybridge"
del _name, _obj
