"""OTP's port_bif_SUITE_data/control_drv.c in Python: output echoes; control $e echoes its
data, $b sets the port busy or not (first byte), $i outputs its data; other commands
under 256 are badarg, from 256 on the answer is the command as 4 big-endian bytes."""
import pybridge


class ControlDrv(pybridge.Driver):
    def output(self, data):
        self.port.output(data)

    def control(self, command, data):
        if command == ord("e"):
            return data
        if command == ord("b"):
            self.port.set_busy_port(bool(data[0]))
            return b""
        if command == ord("i"):
            self.port.output(data)
            return b""
        if command < 256:
            raise pybridge.BadArg("unknown command")
        return command.to_bytes(4, "big")
