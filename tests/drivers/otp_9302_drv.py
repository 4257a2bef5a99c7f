"""OTP's driver_SUITE_data/otp_9302_drv.c in Python: a command starts five async jobs
under one key (so in order, on one thread); each sends {Port, Msg} to the command's
caller from the job, the first after blocking 2 s: block, job, cancel, job, end_of_jobs."""
import time

import pybridge


class Otp9302Drv(pybridge.Driver):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def output(self, data):
        receiver = self.port.caller()
        for msg, block in (("block", True), ("job", False), ("cancel", False),
                           ("job", False), ("end_of_jobs", False)):
            self.port.async_(self.job, receiver, msg, block, key=id(self))

    def job(self, receiver, msg, block):
        if block:
            time.sleep(2)
        self.port.send_term(receiver, (self.port, pybridge.Atom(msg)))

    def ready_async(self, result):
        pass
