"""The built-in generic driver behind the Erlang module pybridge_python (ErlPort's python
module): it imports a module from its open's python_path and calls a function of it, and
hands cast messages to the message handler a function set.

Requests are port_command data, the ETF of ``{call, From, Module, Function, Args}`` or
``{cast, Message}``; a call answers ``{pybridge_python, ok, Result}`` or
``{pybridge_python, error, {python, Class, Message, Traceback}}`` to From (send_term). Why
port_command and not port_call: the function runs in ``output``, where no scheduler waits
for it, so it may call Erlang back (``pybridge.erlport.call``) as ErlPort code does.
"""
from __future__ import annotations

import contextvars
import types
from collections.abc import Callable
from typing import Any

from .._decode import decode
from .._errors import error_term
from .._types import Atom, Pid
from .driver import ERL_DRV_FLAG_USE_PORT_LOCKING, Driver

#: the instance whose function or message handler runs now (pybridge.erlport's functions)
current: contextvars.ContextVar[Python | None] = contextvars.ContextVar(
    "pybridge_python", default=None)

#: the spec pybridge_python opens (pybridge.erlport re-exports the class)
SPEC = "pybridge.erlport:Python"
TAG = Atom("pybridge_python")
CALL = Atom("call")
CAST = Atom("cast")


class Python(Driver):
    """One pybridge_python instance. Its spec, ``pybridge.erlport:Python``, is the one the
    worker's loader takes from outside the python_path: it gives each open's subclass the
    importer of that open's directories."""

    #: each instance on a thread of its own, as each ErlPort instance was a process of its
    #: own: instances do not wait for each other's functions, and one that hangs ends its
    #: own port ({pybridge, hung}), not the worker
    flags = ERL_DRV_FLAG_USE_PORT_LOCKING

    #: imports a module by name as a driver of this open would (set by the loader)
    importer: Callable[[str], types.ModuleType]

    def start(self, command: str) -> None:
        self.handler: Callable[[Any], object] | None = None

    def output(self, data: bytes) -> None:
        request = decode(data, self.none_atom)
        token = current.set(self)
        try:
            if isinstance(request, tuple) and len(request) == 5 and request[0] == CALL:
                self.apply(*request[1:])
            elif isinstance(request, tuple) and len(request) == 2 and request[0] == CAST:
                if self.handler is not None:
                    self.handler(request[1])
            else:
                raise ValueError(f"not a pybridge_python request: {request!r:.200}")
        finally:
            current.reset(token)

    def apply(self, sender: Pid, module: Atom, function: Atom, args: list[Any]) -> None:
        """Module.Function(*Args) (a dotted Function reaches into objects, as in ErlPort);
        its result or exception goes to sender."""
        try:
            target: Any = type(self).importer(module.name)
            for name in function.name.split("."):
                target = getattr(target, name)
            answer = (TAG, Atom("ok"), target(*args))
        except Exception as e:
            answer = (TAG, Atom("error"), error_term(e))
        self.port.send_term(sender, answer)
