"""control(1, _) sleeps 30 s in C with the GIL held (a PyDLL call keeps it), so the worker's
own watchdog thread cannot run; any other command echoes. callback_limit 500 ms."""
import ctypes

import pybridge


class HoldsTheGil(pybridge.Driver):
    callback_limit = 500

    def control(self, command, data):
        if command == 1:
            ctypes.PyDLL(None).sleep(30)
        return data
