"""driver_async for Python: a worker-wide pool of threads, and the way results get back.

Jobs with equal keys run on one thread, in order (driver_async_port_key); jobs without a
key go round the threads. A finished job is queued and the worker's event loop is woken
through a pipe, so ready_async runs on the loop thread, one port callback at a time, in
the order the jobs finished.

While a port has jobs (or coroutines, see _aio) running, its handle is a SafePort: a method
called from another thread is queued the same way and runs on the loop thread, and the
thread waits for its result, so a job uses ``self.port`` as a callback does.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

from ._driver import Port

if TYPE_CHECKING:
    from ._worker import Conn


class JobPool:
    def __init__(self, threads: int) -> None:
        self.execs = [ThreadPoolExecutor(1, thread_name_prefix=f"pybridge-async-{i}")
                      for i in range(max(1, threads))]
        self.turn = itertools.count()
        self.done: queue.SimpleQueue[tuple[Any, Future[Any]]] = queue.SimpleQueue()
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.loop_thread = threading.get_ident()
        self.calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.lock = threading.Lock()            # no call is queued after close()
        self.closed = False

    def submit(self, owner: Any, fn: Callable[..., Any], args: tuple[Any, ...],
               key: Any) -> Future[Any]:
        n = len(self.execs)
        i = next(self.turn) % n if key is None else hash(key) % n
        fut = self.execs[i].submit(fn, *args)
        fut.add_done_callback(lambda f: self._finished(owner, f))
        return fut

    def _finished(self, owner: Any, fut: Future[Any]) -> None:
        self.done.put((owner, fut))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self.wfd, b"!")
        except BlockingIOError:         # the loop has wake-ups pending already
            pass

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """From another thread: fn(*args, **kw) on the loop thread; its result (or its
        exception) here."""
        fut: Future[Any] = Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kw))
            except BaseException as e:
                fut.set_exception(e)
                if not isinstance(e, Exception):
                    raise

        with self.lock:
            if self.closed:
                raise RuntimeError("the pybridge worker has shut down")
            self.calls.put(run)
        self._wake()
        return fut.result()

    def run_calls(self) -> None:
        while True:
            try:
                run = self.calls.get_nowait()
            except queue.Empty:
                return
            run()

    def close(self) -> None:
        """At shutdown (every port closed): run the calls threads wait for; later ones raise."""
        with self.lock:
            self.closed = True
        self.run_calls()

    def finished(self) -> list[tuple[Any, Future[Any]]]:
        """On the loop thread: run the calls other threads wait for, then return the jobs
        that finished since last time, in that order."""
        try:
            while os.read(self.rfd, 4096):
                pass
        except BlockingIOError:
            pass
        self.run_calls()
        out = []
        while True:
            try:
                out.append(self.done.get_nowait())
            except queue.Empty:
                return out


class SafePort(Port):
    """A port handle that threads may use: see share()."""

    __slots__ = ()


def _on_loop_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: Port, *args: Any, **kw: Any) -> Any:
        jobs = self._conn.worker.jobs
        if threading.get_ident() == jobs.loop_thread:
            return fn(self, *args, **kw)
        return jobs.call(fn, self, *args, **kw)
    return method


for _name, _fn in vars(Port).items():
    if not _name.startswith("_") and inspect.isfunction(_fn):
        setattr(SafePort, _name, _on_loop_thread(_fn))


def share(conn: Conn, n: int) -> None:
    """Count async_ jobs and coroutines in (n=1) and out (n=-1) of a port. While any runs
    its handle is a SafePort (the same object, so references kept to it still work); the
    rest of the time, a plain Port whose methods cost no thread check."""
    conn.threads += n
    conn.port.__class__ = SafePort if conn.threads else Port
