"""OTP's driver_SUITE_data/queue_drv.c in Python: control sets how the next command's
data goes into the driver queue (pushq, enq, their _bin and v forms: the last piece, or
the whole I/O vector), dequeues, tells the bytes queued or reads the queue's head; the
port replies in binaries (PORT_CONTROL_FLAG_BINARY)."""
import pybridge

PUSHQ, ENQ, PUSHQ_BIN, ENQ_BIN, PUSHQV, ENQV, DEQ, BYTES_QUEUED, READ_HEAD = range(9)


class QueueDrv(pybridge.Driver):
    def start(self, command):
        self.opcode = None
        self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)

    def control(self, command, data):
        p = self.port
        if command <= ENQV:
            self.opcode = command
            return None
        if command == DEQ:
            if len(data) != 4:
                p.failure_atom("deq: bad length")
            else:
                p.deq(int.from_bytes(data, "big"))
            return None
        if command == BYTES_QUEUED:
            return p.sizeq().to_bytes(4, "big")
        if command == READ_HEAD:
            if len(data) != 4:
                p.failure_atom("read_head: bad length")
                return None
            n = int.from_bytes(data, "big")
            head = b"".join(p.peekq())[:n]
            return head + bytes(n - len(head))
        p.failure_atom("bad opcode to control()")
        return None

    def outputv(self, iov):
        p, last = self.port, (iov[-1] if iov else b"")
        if self.opcode in (PUSHQ, PUSHQ_BIN):
            p.pushq(last)
        elif self.opcode in (ENQ, ENQ_BIN):
            p.enq(last)
        elif self.opcode == PUSHQV:
            p.pushqv(iov)
        elif self.opcode == ENQV:
            p.enqv(iov)
        else:
            p.failure_atom("bad_opcode")
