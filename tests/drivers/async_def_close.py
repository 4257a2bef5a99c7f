"""A port closed while its coroutine waits: the coroutine is cancelled, and stop (or an
async stop) runs after it has unwound. Each step is a line in the file named by start."""
import asyncio

import pybridge


class CloseWhilePending(pybridge.Driver):
    def start(self, command):
        self.path = command

    def note(self, what):
        with open(self.path, "a") as f:
            f.write(what + "\n")

    async def output(self, data):
        self.note("waiting")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)           # unwinding may await
            self.port.output(b"dropped")        # the port is closed: does nothing
            self.note("cancelled")
            raise

    def stop(self):
        self.note("stopped")


class AsyncStop(CloseWhilePending):
    async def stop(self):
        await asyncio.sleep(0.01)
        self.note("async stop")
