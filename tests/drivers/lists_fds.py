"""A driver that runs a program which lists its own descriptors (/proc/self/fd): what a
program started by driver code inherits from the worker. control answers the listing,
one "fd target" a line."""
import subprocess
import sys

import pybridge

LIST = ("import os\n"
        "for f in os.listdir('/proc/self/fd'):\n"
        "    try: print(f, os.readlink('/proc/self/fd/' + f))\n"
        "    except OSError: pass\n")


class ListsFds(pybridge.Driver):
    def control(self, command, data):
        # close_fds=False: only close-on-exec keeps the worker's descriptors out
        return subprocess.run([sys.executable, "-c", LIST], close_fds=False, check=True,
                              stdout=subprocess.PIPE).stdout
