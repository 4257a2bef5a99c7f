"""zero_copy = True with an ``async def output``: the view stays valid across awaits until
the coroutine ends (it says what it got, b"Type Readonly Len", then echoes it); it is kept,
and call(0, _) reports what using it gives afterwards."""
import asyncio

import pybridge
from pybridge import Atom


class ZeroCopyAsync(pybridge.Driver):
    zero_copy = True

    async def output(self, data):
        await asyncio.sleep(0.01)
        self.port.output(f"{type(data).__name__} {data.readonly} {len(data)}".encode())
        self.port.output(data)
        self.view = data

    def call(self, command, term):
        try:
            return bytes(self.view)
        except ValueError:
            return Atom("ValueError")
