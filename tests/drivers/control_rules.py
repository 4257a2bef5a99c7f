"""control's reply rules: None, BadArg, other exceptions, binary mode, large replies."""
import pybridge

NONE, BADARG, RAISE, BINARY, LARGE, LIST_MODE = range(6)


class ControlRules(pybridge.Driver):
    def control(self, command, data):
        if command == NONE:
            return None
        if command == BADARG:
            raise pybridge.BadArg("not for me")
        if command == RAISE:
            raise RuntimeError("control broke")
        if command == BINARY:
            self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)
        if command == LIST_MODE:
            self.port.set_port_control_flags(0)
        if command == LARGE:
            return bytes(range(256)) * (int(data) // 256)
        return data
