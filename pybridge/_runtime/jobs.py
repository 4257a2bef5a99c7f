"""driver_async for Python: a worker-wide pool of threads, and the way results get back.

Jobs with equal keys run on one thread, in order (driver_async_port_key); jobs without a
key go round the threads. A finished job is queued and the worker's event loop is woken
through a pipe, so ready_async runs on the loop thread, one port callback at a time, in
the order the jobs finished.

A port handle's method called from another thread (a job, a coroutine's executor) is
queued the same way by call() and runs on the loop thread, and the thread waits for its
result, so a job uses ``self.port`` as a callback does (the routing is _runtime.entry's).
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class JobPool:
    def __init__(self, threads: int) -> None:
        self.execs = [ThreadPoolExecutor(1, thread_name_prefix=f"pybridge-async-{i}")
                      for i in range(max(1, threads))]
        self.turn = itertools.count()
        self.done: queue.SimpleQueue[tuple[Any, Future[Any]]] = queue.SimpleQueue()
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.loop_thread = threading.get_ident()
        self.calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
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
        self.wake()

    def wake(self) -> None:
        """Wake the loop thread (from any thread)."""
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
            except BaseException as e:  # noqa: BLE001 - SystemExit too: the caller's
                fut.set_exception(e)

        with self.lock:
            if self.closed:
                raise RuntimeError("the pybridge worker has shut down")
            self.calls.put(run)
        self.wake()
        return fut.result()

    def post(self, fn: Callable[[], object]) -> None:
        """From another thread: fn on the loop thread, soon; nobody waits."""
        with self.lock:
            if self.closed:
                return
            self.calls.put(fn)
        self.wake()

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

