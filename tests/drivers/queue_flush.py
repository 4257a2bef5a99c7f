"""Commands go to the port's real ERTS queue; flush drains it one piece per 50 ms timer,
appending each piece to the file named by the start command (ERTS delivers no message
from a closing port, so a file is how the test sees the drain)."""
import pybridge


class QueueFlush(pybridge.Driver):
    def start(self, command):
        self.path = command

    def outputv(self, iov):
        self.port.enqv(iov)

    def control(self, command, data):
        if command == 1:
            self.port.pushq(data)
        elif command == 2:
            return str(self.port.deq(int(data)))     # answers the bytes left
        return b"".join(self.port.peekq())

    def call(self, command, term):
        return self.port.sizeq()

    def flush(self):
        self.port.set_timer(50)

    def timeout(self):
        head = self.port.peekq()[0]
        with open(self.path, "ab") as f:
            f.write(head)
        self.port.deq(len(head))
        if self.port.sizeq():
            self.port.set_timer(50)
