"""The worker process: one event loop serving every port the node gives it.

Wire format: docs/PROTOCOL.md. fd 3 (or --fd) is the ctl socket to the manager port;
each port arrives as two pipes in CTL_NEW_PORT (from the driver, to it), or as one
socket when the node runs short of descriptors, and is served in order on them (a Conn).
Callbacks run one at a time on the loop's thread (driver-level locking), but those of a
class with ERL_DRV_FLAG_USE_PORT_LOCKING, which run on a thread of their port's
(_runtime.runner); the loop thread alone reads channels, changes the Poller and reads the
ctl socket. Outputs are batched per read and written without blocking, and reading a port
pauses while too much of its output is unsent. The watchdog bounds callbacks.
"""
from __future__ import annotations

import array
import ctypes
import logging
import math
import os
import resource
import select
import selectors
import signal
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .._api.driver import CallbackName, Driver, class_callbacks
from .._decode import decode
from .._encode import use_latin1_atoms, use_node_facts
from .._errors import ProtocolError, WorkerError
from .._version import __version__
from .._wire import protocol as P
from .atoms import AtomTable
from .cconn import CONN
from .conn import Conn
from .erlcalls import ErlCalls
from .handlers import HANDLERS
from .jobs import JobPool
from .loader import Loader
from .logs import CtlLogHandler, capture_output
from .pids import Node
from .poller import POLLER
from .reload import Reloads
from .runner import Busy
from .watch import Watch
from .watchdog import Watchdog, exit_hung

if TYPE_CHECKING:
    from .aio import Aio

log = logging.getLogger("pybridge")

READ_SIZE = 256 << 10


class Worker:
    """The loop, the ctl socket, and what every port shares (the Host of each Conn)."""

    def __init__(self, ctl_fd: int, paths: list[str], async_threads: int = 4,
                 max_frame: int = P.DEFAULT_MAX_FRAME, spin_us: int = P.DEFAULT_SPIN_US,
                 callback_limit: int = P.DEFAULT_CALLBACK_LIMIT_MS,
                 node_limits: tuple[int, int] = (0, 0)) -> None:
        self.max_frame = max_frame
        self.limit = callback_limit / 1000 if callback_limit else math.inf
        self.loop_ident = threading.get_ident()
        self.busy = Busy(_AnyPort(self.limit))
        self.busy.ident = self.loop_ident
        self.handed = False             # a port's thread was given work this turn
        self.spin = spin_us / 1e6
        self.spin_misses = 0            # spins in a row that found nothing (spin_now)
        self.spin_turn = 0
        # one read buffer for every port: a fresh 256 KiB bytes per recv costs an mmap
        self.rbuf = memoryview(bytearray(READ_SIZE))
        self.jobs = JobPool(async_threads)
        self.aio: Aio | None = None     # the asyncio loop, from the first coroutine on
        self.later: list[tuple[Conn, CallbackName, Any]] = []
        self.dirty: set[Conn] = set()
        self.ctl = socket.socket(fileno=ctl_fd)
        # inherited at fd 3 without close-on-exec; programs a driver runs must not get it
        self.ctl.set_inheritable(False)
        self.ctl.setblocking(True)
        self.sel = POLLER()
        self.conns: set[Conn] = set()
        self.node = Node(node_limits)
        self.atoms = AtomTable(max_frame)
        self.new_fds: deque[tuple[int, int, int]] = deque()
        self.shm_fds: dict[int, int] = {}       # port serial -> its region, until attached
        # driver modules come from these directories only (app env python_path, open -p);
        # an open's own directories are seen by its driver only
        self.loader = Loader(paths)
        self.reloads = Reloads(self)
        # CTL_RELOADs read, for the loop's next turn: one read while a callback waited on
        # the ctl socket (wait_ctl) must not swap instances under it
        self.reload_frames: deque[tuple[int, bytes]] = deque()
        self.calls = ErlCalls(self)

    # -- threads --
    def on_loop(self) -> bool:
        return threading.get_ident() == self.loop_ident

    def post(self, fn: Callable[[], object]) -> None:
        self.jobs.post(fn)

    def wake(self) -> None:
        self.jobs.wake()

    def worker_hung(self, conn: Any, stack: str) -> None:
        """From the watchdog: a callback on the loop thread ran past its callback_limit.
        Every port of this worker waits for it: tell the node, and end."""
        log.error("pybridge: %s ran past its callback_limit (%s ms) with driver-level locking; "
                  "the worker exits and its ports exit {pybridge, worker_hung}. It was at:\n%s",
                  conn.spec, round(conn.limit * 1000), stack, extra={"driver": conn.spec})
        try:
            self.ctl.sendall(P.frame(P.CTL_HUNG, conn.spec.encode()))
        finally:
            exit_hung()

    # -- ctl channel --
    def send_ctl(self, frame: bytes) -> None:
        """One ctl message, from any thread (each send is one message: none interleave)."""
        self.ctl.sendall(frame)

    def recv_ctl(self) -> bool:
        """Handle one ctl message. False when the node is gone."""
        fds = array.array("i")
        try:
            # never blocks: a ctl event the loop saw may have been read meanwhile (take_shm_fd)
            # MSG_CMSG_CLOEXEC: a port's channel and shared memory stay the worker's own
            msg, anc, _, _ = self.ctl.recvmsg(P.MAX_CTL_MSG,
                                              socket.CMSG_SPACE(16 * fds.itemsize),
                                              socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return True
        except OSError:
            return False
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        if not msg:
            return False
        op = msg[4] if len(msg) >= P.HDR_LEN else -1
        if op == P.CTL_NEW_PORT and len(fds) in (1, 2):
            self.new_fds.append((P.HEADER.unpack_from(msg)[3], fds[0], fds[-1]))
        elif op == P.CTL_SHM and len(fds) == 1:
            serial = P.HEADER.unpack_from(msg)[3]
            old = self.shm_fds.pop(serial, None)
            if old is not None:
                os.close(old)
            self.shm_fds[serial] = fds[0]
        else:
            for fd in fds:   # descriptors we did not ask for
                os.close(fd)
            if op == P.CTL_ERL_RESULT:
                self.calls.on_result(P.HEADER.unpack_from(msg)[3], msg[5], msg[P.HDR_LEN:])
            elif op == P.CTL_CLASS_INFO:
                self.class_info(P.HEADER.unpack_from(msg)[3],
                                msg[P.HDR_LEN:].decode(errors="replace"))
            elif op == P.CTL_RELOAD and len(msg) >= P.HDR_LEN + 9:
                self.reload_frames.append((P.HEADER.unpack_from(msg)[3], msg[P.HDR_LEN:]))
        return True

    def wait_ctl(self, deadline: float, late: str) -> None:
        """Handle the next ctl message, waiting for it until deadline (WorkerError: late)."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.ctl], [], [], left)[0]:
            raise WorkerError(late)
        if not self.recv_ctl():
            raise WorkerError("the node is gone")

    def handshake(self) -> None:
        msg = self.ctl.recv(1 << 16)
        if len(msg) < P.HDR_LEN + 2 or msg[4] != P.CTL_HELLO:
            raise SystemExit("pybridge worker: the node did not say CTL_HELLO")
        proto = int.from_bytes(msg[P.HDR_LEN:P.HDR_LEN + 2], "big")
        theirs = msg[P.HDR_LEN + 2:].decode(errors="replace")
        if proto != P.PROTOCOL_VERSION:
            upgrade = "the pybridge Erlang app / C driver" if proto < P.PROTOCOL_VERSION \
                else "the pybridge Python package"
            log.critical("protocol mismatch: C driver %s speaks %d, Python package %s speaks %d; "
                         "upgrade %s", theirs, proto, __version__, P.PROTOCOL_VERSION, upgrade)
            raise SystemExit(3)
        self.ctl.sendall(P.frame(P.CTL_HELLO,
                                 P.PROTOCOL_VERSION.to_bytes(2, "big") + __version__.encode()))

    def class_info(self, rid: int, spec: str) -> None:
        """CTL_CLASS_INFO: the driver flags and worker group of a class, for
        pybridge:load_driver and pybridge:open."""
        try:
            cls = self.loader.find_class(spec)
            body = (b"\x00" + P.U32.pack(int(getattr(cls, "flags", 0)) & 0xFFFFFFFF)
                    + P.U32.pack(class_callbacks(cls))
                    + str(getattr(cls, "worker_group", "") or "").encode())
        except Exception as e:
            body = b"\x01" + f"{type(e).__name__}: {e}".encode()[:4000]
        self.send_ctl(P.frame(P.CTL_CLASS_INFO, body, rid=rid))

    def port_opened(self, serial: int) -> None:
        """CTL_PORT_OPENED: the manager port tells pybridge_manager of the port (the port
        itself must send no message a C driver's would not)."""
        self.ctl.sendall(P.frame(P.CTL_PORT_OPENED, rid=serial))

    def take_shm_fd(self, serial: int) -> int:
        """The region CTL_SHM brought for this port: the driver sent it before PY_SHM_ATTACH,
        so it is in the ctl socket already if not read yet."""
        deadline = time.monotonic() + 5
        while serial not in self.shm_fds:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ctl], [], [], left)[0]:
                raise ProtocolError("PY_SHM_ATTACH without its CTL_SHM")
            if not self.recv_ctl():
                raise WorkerError("the node is gone")
        return self.shm_fds.pop(serial)

    # -- ports --
    def load(self, conn: Conn, text: str) -> tuple[type[Driver], str]:
        """PY_OPEN's text: options (-t timeout, -o owner, -p paths), the spec, the command."""
        words = text.split(" ")
        i = 0
        paths: list[str] = []
        while i < len(words) and words[i].startswith("-"):
            opt, arg = words[i], words[i + 1] if i + 1 < len(words) else ""
            if opt == "-t" and arg.isdigit():
                conn.timeout_ms = int(arg)
            elif opt == "-o":
                self.node.learn(conn.caller_raw, decode(bytes.fromhex(arg)))
            elif opt == "-p":
                paths = [urllib.parse.unquote(x) for x in arg.split(":") if x]
                conn.open_paths = arg       # a port it creates imports from them too
            i += 2
        spec = words[i] if i < len(words) else ""
        conn.spec = spec
        cls, conn.module = self.loader.find(spec, paths)
        return cls, " ".join(words[i + 1:])

    def accept_ports(self) -> None:
        while self.new_fds:
            self.accept(*self.new_fds.popleft())

    def accept(self, serial: int, rfd: int, wfd: int) -> Conn:
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)     # the same descriptor for a socket: no matter
        conn = CONN(self, rfd, wfd, HANDLERS, serial)
        self.conns.add(conn)
        conn.rearm()
        return conn

    def adopt(self, serial: int, deadline: float) -> Conn:
        """The port driver_create_port just made: its channel comes in CTL_NEW_PORT `serial`,
        with its PY_OPEN already in it; set it up now, so create_port can return it."""
        if not self.on_loop():
            adopted: Conn = self.jobs.call(self.adopt, serial, deadline)
            return adopted
        while True:
            # a port's thread asks after the loop may have taken the channel in already
            conn = next((c for c in self.conns if c.serial == serial), None)
            item = next((i for i in self.new_fds if i[0] == serial), None)
            if conn is None and item is not None:
                self.new_fds.remove(item)
                conn = self.accept(*item)
            if conn is not None:
                while conn.instance is None and not conn.closed:
                    if not conn.channel.wait_readable(deadline - time.monotonic()):
                        raise WorkerError("the new port's channel stayed silent")
                    conn.on_readable()
                return conn
            self.wait_ctl(deadline, "the new port's channel did not arrive in time")

    def start_coroutine(self, conn: Conn, coro: Coroutine[Any, Any, Any], what: str,
                        answer: Callable[[Any], object] | None, rid: int) -> None:
        if not self.on_loop():          # the asyncio loop runs on the loop thread
            self.jobs.call(self.start_coroutine, conn, coro, what, answer, rid)
            return
        if self.aio is None:
            from .aio import Aio  # asyncio is imported by the first coroutine
            self.aio = Aio(self.sel, self.conns)
        self.aio.start(conn, coro, what, answer, rid)

    # -- the loop --
    def run(self) -> None:
        self.handshake()
        self.sel.register(self.ctl, selectors.EVENT_READ, None)
        self.sel.register(self.jobs.rfd, selectors.EVENT_READ, self.jobs)
        Watchdog(self).start()
        busy, anyone = self.busy, self.busy.conn
        while True:
            if self.aio is not None:
                self.aio.run()
            while self.dirty:
                self.dirty.pop().flush()
            if self.new_fds:
                self.accept_ports()
            while self.reload_frames:
                self.reloads.handle(*self.reload_frames.popleft())
            while self.later:
                conn, name, arg = self.later.pop(0)
                busy.conn = conn
                conn.call_back(name, arg)
                conn.flush()
            busy.since, busy.conn = 0.0, anyone
            ready = self.wait()
            busy.since = time.monotonic()
            for what, ev in ready:
                if what.__class__ is CONN:      # the common case, tested first
                    if not what.closed:
                        busy.conn = what
                        if ev & selectors.EVENT_WRITE:
                            what.flush()
                        if ev & selectors.EVENT_READ and not what.closed:
                            what.on_readable()
                elif what is None:
                    if not self.recv_ctl():
                        return self.shutdown()
                elif what is self.jobs:
                    for conn, fut in self.jobs.finished():
                        busy.conn = conn
                        conn.on_job_done(fut)
                        conn.flush()
                elif isinstance(what, Watch):
                    if not what.conn.closed:
                        busy.conn = what.conn
                        what.fire(ev)
                elif not what.closed:           # asyncio's (_runtime.aio.Aio)
                    what.on_readable()

    def wait(self) -> list[tuple[Any, int]]:
        """What is ready: polled for up to spin seconds before sleeping, since a port that
        was just served is likely to send again at once (a control's caller, a pipeline);
        a sleeping worker's wake-up costs as much as the whole round trip."""
        timeout = None if self.aio is None else self.aio.timeout()
        handed, self.handed = self.handed, False
        # spinning keeps the GIL from the port threads just handed work (port-level locking)
        if self.spin and timeout != 0 and not handed and self.spin_now():
            clock, poll = time.perf_counter, self.sel.select
            end = clock() + (self.spin if timeout is None else min(self.spin, timeout))
            while True:
                ready = poll(0)
                if ready:
                    self.spin_misses = 0
                    return ready
                if clock() >= end:
                    break
            self.spin_misses += 1
            if timeout is not None:
                timeout = max(0.0, timeout - self.spin)
        return self.sel.select(timeout)

    def spin_now(self) -> bool:
        """Spinning pays only while the next frame comes within the spin: on a loaded
        machine a spinning worker holds the CPU the node needs. After SPIN_MISSES spins in
        a row found nothing, the worker sleeps at once, and spins every SPIN_PROBE-th turn
        to see whether frames come quickly again (the C driver does the same)."""
        if self.spin_misses < SPIN_MISSES:
            return True
        self.spin_turn += 1
        return self.spin_turn % SPIN_PROBE == 0

    def shutdown(self) -> None:
        self.calls.fail_all("the node is gone")
        for conn in list(self.conns):
            conn.close()
        # a port-level port closes on its own thread (stop runs there) and calls this
        # thread meanwhile: serve those calls until every such port is released, within
        # the time the node gives a worker to exit before it kills it
        end = time.monotonic() + SHUTDOWN_S
        while any(c.runner is not None for c in self.conns):
            left = end - time.monotonic()
            if left <= 0:
                break
            select.select([self.jobs.rfd], [], [], min(left, 0.01))
            self.jobs.finished()        # runs the calls; the jobs' ports are gone
        if self.aio is not None:
            self.aio.shutdown()
        self.jobs.close()


SPIN_MISSES = 2             # spins in a row that found nothing: stop spinning (Worker.spin_now)
SPIN_PROBE = 32             # then spin again every this many turns

# seconds a shutdown waits for port-level ports' stop: within the node's STOP_GRACE_MS (200)
SHUTDOWN_S = 0.15


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the worker must not outlive the node, even if ctl EOF is missed."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _keep_large_blocks() -> None:
    """Bodies up to the ring's size come from malloc's heap and go back to it: glibc would
    mmap each one over 128 KiB and unmap it on free, so every large message paid its page
    faults again (a fresh 1 MiB costs more than copying it)."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 16 << 20)           # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)           # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class _AnyPort:
    """Whom the loop thread serves when it is no port in particular (coroutines' passes)."""

    spec = "the worker's asyncio loop"
    timeout_ms = 0

    def __init__(self, limit: float) -> None:
        self.limit = limit


def main(fd: int, paths: list[str], async_threads: int = 4, max_frame: int = P.DEFAULT_MAX_FRAME,
         spin_us: int = P.DEFAULT_SPIN_US,
         callback_limit: int = P.DEFAULT_CALLBACK_LIMIT_MS,
         node_pid: tuple[int, bytes] = (0, b""), node_limits: tuple[int, int] = (0, 0)) -> None:
    _die_with_parent()
    _keep_large_blocks()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = Worker(fd, paths, async_threads, max_frame, spin_us, callback_limit, node_limits)
    capture_output(worker.ctl)
    handler = CtlLogHandler(worker.ctl)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if node_pid[1]:
        worker.node.learn(node_pid[0], decode(node_pid[1]))
        # the node atom of term_to_binary(self()): ATOM_EXT (100) where the default
        # minor_version is 1 (OTP 25 and older), so replies are written as that OTP would
        use_latin1_atoms(node_pid[1][2:3] == b"d")
    # big maps in term_to_binary's order: atom indices learned from the driver, and which
    # pids, ports and references are this node's
    use_node_facts(worker.atoms.get, worker.node.facts)
    worker.run()
