"""What ErlPort's Python side (erlport.erlang) gave the functions it called, for code that
moves to pybridge_python (docs/MIGRATING_FROM_ERLPORT.md): each works inside a function
called by pybridge_python:call/4, or a message handler, of the instance running it.

``Python`` is the generic driver itself (the spec ``pybridge.erlport:Python``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._api.python_calls import Python, current
from ._types import Atom, Pid

__all__ = ["Atom", "Python", "call", "cast", "set_message_handler",
           "set_default_message_handler"]


def _instance() -> Python:
    instance = current.get()
    if instance is None:
        raise RuntimeError("pybridge.erlport works inside a function pybridge_python:call/4 "
                           "runs, or its message handler")
    return instance


def set_message_handler(handler: Callable[[Any], object]) -> None:
    """pybridge_python:cast(Instance, Message) calls handler(Message) from now on."""
    if not callable(handler):
        raise TypeError("the message handler must be callable")
    _instance().handler = handler


def set_default_message_handler() -> None:
    """Cast messages are dropped again (the default)."""
    _instance().handler = None


def call(module: str | Atom, function: str | Atom, args: list[Any],
         timeout: float = 5.0) -> Any:
    """apply(Module, Function, Args) on the node: Port.call_erlang of the instance."""
    return _instance().port.call_erlang(module, function, args, timeout)


def cast(pid: Pid, message: Any) -> None:
    """pid ! message (erl_drv_send_term of the instance's port)."""
    _instance().port.send_term(pid, message)
