"""Per-port order under awaits: output awaits a random 0-20 ms (or the ms after b"sleep ")
and reports its data; control awaits likewise and reports its command; call is synchronous
and reports too. Every report is {Event, Arg} through output_term."""
import asyncio
import random

import pybridge
from pybridge import Atom


async def nap(data):
    long = data.startswith(b"sleep ")
    await asyncio.sleep(int(data[6:]) / 1000 if long else random.random() / 50)


class Ordering(pybridge.Driver):
    async def output(self, data):
        await nap(data)
        self.port.output_term((Atom("output"), data))

    async def control(self, command, data):
        await nap(data)
        self.port.output_term((Atom("control"), command))
        return data

    def call(self, command, term):
        self.port.output_term((Atom("call"), command))
        return term


class StrictOrdering(Ordering):
    """Strict mode: port_command returns when the output coroutine has ended."""

    blocking = True
