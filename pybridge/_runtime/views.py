"""What a zero_copy driver's output and outputv get (Driver.zero_copy, docs/API.md):
read-only memoryviews, valid for the callback's duration, released when it is done.

The reader lends views of its buffer or of the shared-memory ring (_wire.reader) for as
long as the sink it hands them to runs. A body that waits for later (under port-level
locking, while an ask or a coroutine holds the port) or goes to an ``async def`` callback
is kept (kept, own): a view of the reader's buffer as a new view of the same memory (the
reader leaves that memory to it and reads into a fresh buffer), a view of the ring as a
copy (the ring's space goes back to the driver once the reader's turn is over).
"""
from __future__ import annotations

import mmap
from collections.abc import Callable, Coroutine, Sequence
from types import CoroutineType
from typing import Any

from .._wire.reader import Body


def own(piece: Body) -> memoryview:
    """A read-only view of piece that stays valid after the reader's turn."""
    if isinstance(piece, memoryview) and piece.obj.__class__ is not mmap.mmap:
        return memoryview(piece)
    return memoryview(bytes(piece))


def kept(pieces: Sequence[Body]) -> list[Body]:
    """Pieces that wait for later: bytes as they are (a driver without zero_copy), views
    owned."""
    return [p if p.__class__ is bytes else own(p) for p in pieces]


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
         pieces: Sequence[Body], is_async: bool) -> Any:
    """outputv(views), or output(view) of the whole body (several pieces: a view of their
    joined copy); what it returned (an async def callback's coroutine, which releases the
    views when it ends)."""
    if is_async:
        views = [own(p) for p in pieces]
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
