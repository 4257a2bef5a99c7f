"""pytest plugin: test Python drivers against a real Erlang node (the ``beam`` fixture).

Registered as a pytest11 entry point. The session fixture ``beam`` starts ``erl`` with the
pybridge application (its ebin is found from ``--pybridge-ebin``, ``$PYBRIDGE_EBIN``, or a
checkout's ``_build``) and its workers running this Python::

    def test_upper(beam):
        port = beam.open("my_drivers:Upper")
        port.command(b"hi")
        assert port.receive(timeout=1) == (Atom("data"), b"HI")
        assert port.control(1, b"hi") == b"ih"

Driver modules are imported from the ini option ``pybridge_python_path`` (default: the
rootdir) and, for the ports a test opens, from the directory of its test file, so that a
driver next to its test is found wherever pytest runs from. Errors raised in Erlang come
back as :class:`ErlangError`. A port that exits abnormally fails the test that opened it
with :class:`PortExited`: at once when the test waits on it (``receive``), else when the
test ends.
"""
from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._decode import decode
from ._encode import encode
from ._tools import ebin
from ._types import Atom

__all__ = ["Beam", "BeamPort", "ErlangError", "PortExited"]


def _above_9(fd: int) -> int:
    """The same pipe end on a descriptor above 9 (the low ones are the emulator's)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class ErlangError(Exception):
    """An exception raised on the Erlang side; ``reason`` is the decoded term."""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class PortExited(ErlangError):
    """A port of the test exited abnormally; ``reason`` is its exit reason."""

    def __init__(self, port: Any, reason: Any, during: str = "") -> None:
        super().__init__(reason)
        self.port = port
        # the port as Erlang prints it: its id is the number after the node's
        number = int.from_bytes(getattr(port, "id", b""), "big")
        self.args = (f"port #Port<0.{number}> exited{during}: {reason!r}",)


class BeamPort:
    """A port opened on the node: the pybridge Erlang API, from Python."""

    def __init__(self, beam: Beam, port: Any) -> None:
        self.beam, self.port = beam, port

    def command(self, data: bytes) -> bool:
        return bool(self.beam.request((Atom("command"), self.port, data)))  # always true

    def control(self, command: int, data: bytes = b"") -> Any:
        return self.beam.request((Atom("control"), self.port, command, data))

    def call(self, command: int, term: Any) -> Any:
        return self.beam.request((Atom("call"), self.port, command, term))

    def receive(self, timeout: float = 5.0) -> Any:
        """The next ``{Port, Msg}`` from this port: returns Msg (``(Atom('data'), b'...')``)."""
        return self.beam.request((Atom("receive"), self.port, int(timeout * 1000)))

    def close(self) -> None:
        self.beam.request((Atom("close"), self.port))


class Beam:
    """A real Erlang node running the pybridge application."""

    def __init__(self, ebin: str, python_path: list[str]) -> None:
        # the directory of the test running now: the ports it opens import from there too
        self.test_dir: str | None = None
        env = dict(os.environ, PYBRIDGE_PYTHON=sys.executable)
        # requests and answers on two pipes of their own: the node's stdio stays its own
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        req_r, rep_w = _above_9(req_r), _above_9(rep_w)
        self.proc = subprocess.Popen(
            ["erl", "-noinput", "-pa", ebin, "-run", "pybridge_testing", "main",
             str(req_r), str(rep_w)],
            env=env, pass_fds=(req_r, rep_w))
        os.close(req_r)
        os.close(rep_w)
        self.requests = os.fdopen(self.req_w, "wb")
        self.replies = os.fdopen(self.rep_r, "rb")
        self.request((Atom("start"), [p.encode() for p in python_path]))

    def request(self, req: tuple[Any, ...]) -> Any:
        data = encode(req)
        self.requests.write(struct.pack(">I", len(data)) + data)
        self.requests.flush()
        head = self.replies.read(4)
        if len(head) < 4:
            raise ErlangError(Atom("node_gone"))
        reply = decode(self.replies.read(struct.unpack(">I", head)[0]))
        if reply == Atom("timeout"):
            raise TimeoutError("nothing arrived in time")
        if reply[0] == Atom("port_exited"):
            raise PortExited(reply[1], reply[2])
        tag, value = reply
        if tag == Atom("error"):
            raise ErlangError(value)
        return value

    def open(self, spec: str, args: str = "", **opts: Any) -> BeamPort:
        """pybridge:open(Spec, Args, [binary | Opts]); opts like timeout=1000. The test
        file's directory is put after a python_path given here."""
        if self.test_dir is not None:
            given = [os.fsencode(d) for d in opts.get("python_path", [])]
            opts["python_path"] = given + [os.fsencode(self.test_dir)]
        erl_opts = [(Atom(k), v) for k, v in opts.items()]
        return BeamPort(self, self.request((Atom("open"), spec.encode(), args.encode(), erl_opts)))

    def begin_test(self, test_dir: str) -> None:
        """A new test: its ports import from test_dir; earlier tests' exits are dropped."""
        self.test_dir = test_dir
        self.request((Atom("begin_test"),))

    def port_exits(self) -> list[tuple[Any, Any]]:
        """The abnormal exits of the ports opened since begin_test, not yet reported."""
        return list(self.request((Atom("exits"),)))

    def receive(self, timeout: float = 5.0) -> Any:
        """The next message of any kind (output_term, send_term, ...)."""
        return self.request((Atom("receive_any"), int(timeout * 1000)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.requests.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def find_ebin(config: pytest.Config) -> str:
    found = ebin.find_ebin(config.getoption("pybridge_ebin"), Path(config.rootpath))
    if found is not None:
        return str(found)
    raise pytest.UsageError("pybridge.testing: no pybridge ebin found; build the Erlang app "
                            "(rebar3 compile) or pass --pybridge-ebin / set PYBRIDGE_EBIN")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pybridge-ebin", default=None,
                     help="ebin directory of the pybridge Erlang app")
    parser.addini("pybridge_python_path", type="paths", default=[],
                  help="directories the node's workers import driver modules from")


_BEAM = pytest.StashKey[Beam]()
_TEST_DIR = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def beam(request: pytest.FixtureRequest) -> Iterator[Beam]:
    """A real node with the pybridge application started, for the whole session."""
    paths = ([str(p) for p in request.config.getini("pybridge_python_path")]
             or [str(request.config.rootpath)])
    node = Beam(find_ebin(request.config), paths)
    node.test_dir = request.config.stash.get(_TEST_DIR, None)
    request.config.stash[_BEAM] = node
    yield node
    del request.config.stash[_BEAM]
    node.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the test's fixtures: where its ports import from, and a clean slate."""
    item.config.stash[_TEST_DIR] = str(item.path.parent)
    node = item.config.stash.get(_BEAM, None)
    if node is not None and "beam" in getattr(item, "fixturenames", ()):
        node.begin_test(str(item.path.parent))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    """After the test: a port of it that exited abnormally, and went unseen, fails it."""
    outcome = yield
    node = item.config.stash.get(_BEAM, None)
    if node is None or "beam" not in getattr(item, "fixturenames", ()):
        return
    exits = node.port_exits()
    if exits and outcome.excinfo is None:
        port, reason = exits[0]
        outcome.force_exception(PortExited(port, reason, " during the test"))
