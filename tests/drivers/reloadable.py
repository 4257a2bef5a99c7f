"""Reloaded while it serves (pybridge:reload tests): a test copies this file into a directory
of its own under a fresh module name, then rewrites VERSION (or breaks the file) for new code.

Each answer names the code's VERSION and the instance's count of the commands and controls
it has served, so a test sees which code answered and that nothing was lost or reordered.
"""
import asyncio
import threading
import time

import pybridge

VERSION = 1


def tag(n, data):
    # a module function: old instances keep calling their own module's (a reload runs the
    # source into a new module)
    return b"v%d %d %s" % (VERSION, n, data)


class Plain(pybridge.Driver):
    """No code_change: an open port keeps this code until it closes."""

    def start(self, command):
        self.n = 0
        self.refuse = False
        self.same_port = None

    def output(self, data):
        if data.startswith(b"sleep "):     # an async def callback, pending that many seconds
            return self.pending(float(data[6:]))
        if data.startswith(b"slow "):      # a callback that runs that many seconds
            n = self.n
            # "pending" from another thread goes out now, not at the callback's end
            threading.Thread(target=self.port.output, args=(b"pending",)).start()
            time.sleep(float(data[5:]))
            self.n = n + 1                  # a code_change meanwhile would miss it
            self.port.output(tag(self.n, b"slow"))
            return None
        self.n += 1
        self.port.output(tag(self.n, data))

    def control(self, command, data):
        if command == 1:        # the next code_change raises
            self.refuse = True
        elif command == 2:      # the next code_change says so in an output
            self.announce = True
        self.n += 1
        return tag(self.n, data)

    def call(self, command, term):
        return (VERSION, self.n, self.same_port)

    async def pending(self, seconds):
        self.port.output(b"pending")
        await asyncio.sleep(seconds)
        self.n += 1             # a code_change before this would miss it
        self.port.output(tag(self.n, b"sleep"))


class Upgrades(Plain):
    """code_change takes the count, unless told to refuse."""

    def code_change(self, old):
        if old.refuse:
            raise RuntimeError(f"refused by version {VERSION}")
        self.n, self.refuse = old.n, False
        self.same_port = self.port is old.port
        if getattr(old, "announce", False):
            self.port.output(b"code_change")


class LockedPlain(Plain):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING


class LockedUpgrades(Upgrades):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
