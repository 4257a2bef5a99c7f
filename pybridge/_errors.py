"""Exceptions, one per failure mode, each mapped to what Erlang observes."""


class PybridgeError(Exception):
    """Base class of every pybridge exception."""


class BadArg(PybridgeError):
    """Raise from control/call to make Erlang see badarg (as a C driver returning -1)."""


class WorkerError(PybridgeError):
    """The bridge itself failed (a lost connection, a missing answer from the node)."""
