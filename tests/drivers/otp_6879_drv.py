"""OTP's driver_SUITE_data/otp_6879_drv.c in Python: port_call echoes the term it is
given (the C driver answers through an async job; the answer is the same)."""
import pybridge


class Otp6879Drv(pybridge.Driver):
    def call(self, command, term):
        return term
