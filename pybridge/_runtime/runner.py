"""Port-level locking (ERL_DRV_FLAG_USE_PORT_LOCKING): a port's callbacks on a thread of its own.

The worker's loop thread goes on reading every channel; for a port whose class has the flag,
what it reads (and its ready_async, select events, timers) becomes tasks of that port's
Runner, run one at a time and in order on the port's thread. The thread is made with the
first task and ends after IDLE seconds without one, so idle ports hold no thread. Ports run
concurrently: a callback blocked in I/O, time.sleep or C code that releases the GIL holds
up its own port only. What a task queued to send is written by the port's thread at the
task's end; a full pipe's rest is the loop thread's (Runner.after).
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .._wire.accel import new_lock

log = logging.getLogger("pybridge")

IDLE = 2.0                  # seconds a port's thread waits for a task before it ends
LATE = 0.1                  # seconds past a caller's timeout before its callback is interrupted:
                            # an answer the driver may still take must not become a Timeout


class Busy:
    """What a thread runs for ports now, for the watchdog: the port, since when (0: idle),
    and the deadline of the control / call whose caller waits (0: none)."""

    __slots__ = ("conn", "since", "deadline", "ident", "told", "lock")

    def __init__(self, conn: Any = None) -> None:
        self.conn: Any = conn
        # the watchdog's interrupt vs. the deadline's end (ConnCore takes it without a call)
        self.lock = new_lock()
        self.since = 0.0
        self.deadline = 0.0
        self.ident = 0
        self.told = 0.0             # the deadline the watchdog interrupted already


class Runner:
    """One port's tasks and the thread that runs them."""

    def __init__(self, name: str, after: Callable[[], object]) -> None:
        self.name = name
        self.after = after          # at each task's end, on the port's thread
        self.tasks: deque[Callable[[], object]] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.thread: threading.Thread | None = None
        self.busy = Busy()
        self.stopped = False        # hung: the port's tasks are dropped, its thread ends

    def on_thread(self) -> bool:
        return threading.get_ident() == self.busy.ident

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        self.add(functools.partial(fn, *args) if args else fn, False)

    def submit_first(self, fn: Callable[[], object]) -> None:
        """fn before every task queued (what a coroutine held back is older than they are)."""
        self.add(fn, True)

    def add(self, task: Callable[[], object], first: bool) -> None:
        with self.cond:
            if self.stopped:
                return
            if first:
                self.tasks.appendleft(task)
            else:
                self.tasks.append(task)
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name=self.name, daemon=True)
                self.thread.start()
            else:
                self.cond.notify()

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """From another thread: fn on the port's thread, between callbacks; its result here."""
        fut: Future[Any] = Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kw))
            except BaseException as e:      # noqa: BLE001 - the caller's, raised there
                fut.set_exception(e)
        with self.cond:
            if self.stopped:
                raise RuntimeError(f"{self.name}: the port is hung")
        self.submit(run)
        return fut.result()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.tasks.clear()
            self.cond.notify()

    def run(self) -> None:
        busy = self.busy
        busy.ident = threading.get_ident()
        while True:
            try:
                with self.cond:
                    while not self.tasks:
                        if self.stopped or (not self.cond.wait(IDLE) and not self.tasks):
                            self.thread = None
                            busy.ident = 0
                            return
                    task = self.tasks.popleft()
                busy.since = time.monotonic()
                try:
                    task()
                    self.after()
                finally:
                    busy.since = 0.0
            except BaseException as e:  # noqa: BLE001 - a Timeout that came late, say
                if not self.stopped:
                    log.error("pybridge %s: %s between callbacks: %s", self.name,
                              type(e).__name__, e, exc_info=e)
