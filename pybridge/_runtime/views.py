"""What a zero_copy driver's output and outputv get (Driver.zero_copy, docs/API.md):
read-only memoryviews, valid for the callback's duration, released when it is done.

The reader lends views of its buffer or of the shared-memory ring (_wire.reader); a body
that waits for later (under port-level locking, while an ask or a coroutine holds the port)
is copied first (copies), since the reader's memory moves on meanwhile. An ``async def``
callback gets views of a copy taken before its coroutine starts, released when it ends.
"""
from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from types import CoroutineType
from typing import Any

Body = bytes | memoryview


def copies(pieces: Sequence[Body]) -> list[bytes]:
    """Pieces that may outlive the reader's turn (bytes(b) is b: no copy of bytes)."""
    return [bytes(p) for p in pieces]


def release(views: list[memoryview]) -> None:
    """Any later use raises ValueError; a view something still exports (a pickle.PickleBuffer
    of it) stays valid, and so does its memory (the reader leaves it to it)."""
    for v in views:
        try:
            v.release()
        except BufferError:
            pass


async def released_after(coro: Coroutine[Any, Any, Any], views: list[memoryview]) -> Any:
    try:
        return await coro
    finally:
        release(views)


def call(outputv: Callable[[Any], object] | None, output: Callable[[Any], object] | None,
         pieces: Sequence[Body],
         is_async: bool) -> Any:
    """outputv(views), or output(view) of the whole body (several pieces: a view of their
    joined copy); what it returned (an async def callback's coroutine releases the views
    when it ends)."""
    if is_async:
        views = [memoryview(bytes(p)) for p in pieces]
    else:
        views = [p if p.__class__ is memoryview else memoryview(p) for p in pieces]
    if outputv is None and len(views) != 1:
        views = [memoryview(b"".join(views))]
    try:
        r = outputv(views) if outputv is not None else output(views[0])  # type: ignore[misc]
    except BaseException:
        release(views)
        raise
    if is_async and r.__class__ is CoroutineType:
        return released_after(r, views)
    release(views)
    return r
