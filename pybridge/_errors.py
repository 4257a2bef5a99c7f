"""Every exception pybridge raises, one per failure mode, each with what Erlang sees.

The ETF codec's DecodeError and EncodeError live with the term types (pybridge._types) and
SpecError with the driver term format (pybridge.spec): they are ValueError / TypeError
subclasses of their own modules, raised in Python and seen by Erlang only through the
callback that let them escape (below, error_term).
"""
import traceback

from ._types import Atom

#: the private package of an open's own python_path (_runtime.loader): a module's public
#: name leaves it out
PREFIX = "_pybridge_path_"


def public_name(modname: str) -> str:
    """A module's name without the private package of its open's python_path."""
    if modname.startswith(PREFIX):
        return modname.partition(".")[2] or modname
    return modname


def error_term(exc: BaseException) -> tuple[Atom, Atom, bytes, bytes]:
    """{python, 'module.Class', Message, Traceback}: what Erlang's error/1 gets for an
    exception out of a callback that answers (control, call, start, pybridge_python)."""
    cls = type(exc)
    return (Atom("python"), Atom(f"{public_name(cls.__module__)}.{cls.__qualname__}"),
            str(exc).encode(),
            "".join(traceback.format_exception(exc)).encode())


class PybridgeError(Exception):
    """Base class of pybridge's own exceptions.

    Raised out of control, call or start, any exception (this one or another) reaches
    Erlang as error({python, 'module.Class', Message, Traceback}) from pybridge:control/call
    or pybridge:open; raised out of any other callback it is logged, and the port goes on.
    """


class BadArg(PybridgeError):
    """Raise from control/call to make Erlang see badarg (as a C driver returning -1).

    pybridge raises it too for a port_control / port_call the driver has no callback for,
    and for a malformed pybridge:control/call request."""


class WorkerError(PybridgeError):
    """The bridge itself failed: a lost connection, or no answer from the node in time (a
    driver call such as monitor_process, a pid's external form, a new port's channel).

    Erlang sees it as any exception of the callback that let it escape (see PybridgeError)."""


class ProtocolError(PybridgeError):
    """The peer sent something the protocol does not allow (docs/PROTOCOL.md).

    The worker logs it and closes that port's channel: the C driver takes the channel's end
    as its worker's, and the port exits with {pybridge, worker_down}; other ports go on."""


class Timeout(BaseException):
    """Raised inside a callback that ran too long: past its port's timeout (the control or
    call that waited for it has answered {pybridge, timeout} already), or past its class's
    callback_limit (the port exits {pybridge, hung}).

    pybridge raises it in the callback's thread where Python allows (between bytecodes; not
    inside C code that does not return). A BaseException, as KeyboardInterrupt is, so that
    ``except Exception`` in the callback does not swallow it; pybridge logs it as the
    callback's exception."""


class ErlangError(PybridgeError):
    """An Erlang exception in the function a ``Port.call_erlang`` applied: ``cls`` is its
    class (``"error"``, ``"exit"`` or ``"throw"``), ``reason`` and ``stacktrace`` its terms
    as Python values. A process that died without answering is ``"exit"`` with its exit
    reason and an empty stacktrace.

    Not raised by pybridge.testing, whose own ErlangError is an Erlang error seen by the test."""

    def __init__(self, cls: str, reason: object, stacktrace: object) -> None:
        super().__init__(f"{cls}:{reason!r}")
        self.cls = cls
        self.reason = reason
        self.stacktrace = stacktrace
