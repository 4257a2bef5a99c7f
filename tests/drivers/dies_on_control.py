"""A driver that ends its worker on demand: control 0 exits with the status in data,
control 1 kills the worker with the signal in data; control 2 answers the worker's pid."""
import os

import pybridge


class DiesOnControl(pybridge.Driver):
    def control(self, command, data):
        if command == 0:
            os._exit(int(data))
        if command == 1:
            os.kill(os.getpid(), int(data))
        return str(os.getpid()).encode()


class Isolated(DiesOnControl):
    """The same, placed by its class attribute in the worker group `isolated`."""
    worker_group = "isolated"
