"""control sends a frame of an opcode the protocol does not have, below the port handle,
while its caller waits: the caller must hear protocol_error, not worker_down."""
import pybridge


class BreaksProtocolInControl(pybridge.Driver):
    def control(self, command, data):
        self.port._b.send(0x7F)
        return b"never seen"
