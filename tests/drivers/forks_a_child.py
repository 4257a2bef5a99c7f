"""A driver whose start leaves a child that holds every descriptor of the worker: a fork
without exec (command "fork") or subprocess.Popen(close_fds=False) ("popen"). control 0
answers the child's pid; control 1 sleeps for the ms in data."""
import os
import subprocess
import time

import pybridge


class ForksAChild(pybridge.Driver):
    def start(self, command):
        if command == "popen":
            self.child = subprocess.Popen(["sleep", "30"], close_fds=False).pid
            return
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        self.child = pid

    def control(self, command, data):
        if command == 1:
            time.sleep(int(data) / 1000)
        return str(self.child).encode()
