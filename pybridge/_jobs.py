"""driver_async for Python: a worker-wide pool of threads, and the way results get back.

Jobs with equal keys run on one thread, in order (driver_async_port_key); jobs without a
key go round the threads. A finished job is queued and the worker's event loop is woken
through a pipe, so ready_async runs on the loop thread, one port callback at a time, in
the order the jobs finished.
"""
from __future__ import annotations

import itertools
import os
import queue
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class JobPool:
    def __init__(self, threads: int) -> None:
        self.execs = [ThreadPoolExecutor(1, thread_name_prefix=f"pybridge-async-{i}")
                      for i in range(max(1, threads))]
        self.turn = itertools.count()
        self.done: queue.SimpleQueue[tuple[Any, Future[Any]]] = queue.SimpleQueue()
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def submit(self, owner: Any, fn: Callable[..., Any], args: tuple[Any, ...],
               key: Any) -> Future[Any]:
        n = len(self.execs)
        i = next(self.turn) % n if key is None else hash(key) % n
        fut = self.execs[i].submit(fn, *args)
        fut.add_done_callback(lambda f: self._finished(owner, f))
        return fut

    def _finished(self, owner: Any, fut: Future[Any]) -> None:
        self.done.put((owner, fut))
        try:
            os.write(self.wfd, b"!")
        except BlockingIOError:         # the loop has wake-ups pending already
            pass

    def finished(self) -> list[tuple[Any, Future[Any]]]:
        """On the loop thread: the jobs that finished since last time, in that order."""
        try:
            while os.read(self.rfd, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self.done.get_nowait())
            except queue.Empty:
                return out
