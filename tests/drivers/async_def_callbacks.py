"""Callbacks as coroutines: each awaits before it acts. control commands: 1 reverse,
2 set_timer(data ms) (timeout is a coroutine too), 3 an async_ job that uses self.port from
its thread, 4 a thread of asyncio.to_thread that does, 5 await data ms then answer "slept",
6 await such an async_ job's result.
AsyncControlRules / AsyncCallRules: control_rules / call_rules behind an await."""
import asyncio
import threading

import pybridge
from call_rules import CallRules
from control_rules import ControlRules
from pybridge import Atom


class AsyncCallbacks(pybridge.Driver):
    async def start(self, command):
        await asyncio.sleep(0.01)
        self.prefix = command.encode()

    async def output(self, data):
        await asyncio.sleep(0.01)
        if data == b"raise":
            raise RuntimeError("async output broke")
        self.port.output(self.prefix + data.upper())

    async def control(self, command, data):
        await asyncio.sleep(0.01)
        if command == 1:
            return data[::-1]
        if command == 2:
            self.port.set_timer(int(data))
        elif command == 3:
            self.port.async_(self.job, data)
        elif command == 4:
            return await asyncio.to_thread(self.job, data)
        elif command == 5:
            await asyncio.sleep(int(data) / 1000)
            return b"slept"
        elif command == 6:
            return await asyncio.wrap_future(self.port.async_(self.job, data))
        return None

    async def call(self, command, term):
        await asyncio.sleep(0.01)
        return (Atom("called"), command, term, self.port.caller())

    async def timeout(self):
        await asyncio.sleep(0.01)
        self.port.output_term((Atom("timeout"), self.port.read_timer()))

    def job(self, data):
        """On another thread: self.port's methods, even one that asks the emulator."""
        off_loop = threading.current_thread() is not threading.main_thread()
        self.port.output_term((Atom("from_thread"), data, off_loop,
                               isinstance(self.port.monotonic_time(), int)))
        return data

    async def ready_async(self, result):
        await asyncio.sleep(0.01)
        self.port.send_term(self.port.connected(), (Atom("ready_async"), result))


class AsyncControlRules(ControlRules):
    async def control(self, command, data):
        await asyncio.sleep(0)
        return super().control(command, data)


class AsyncCallRules(CallRules):
    async def call(self, command, term):
        await asyncio.sleep(0)
        return super().call(command, term)
