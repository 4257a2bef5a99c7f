"""Commands go to the port's real ERTS queue; flush drains it slowly on timers."""
import pybridge
from pybridge import Atom


class QueueFlush(pybridge.Driver):
    def outputv(self, iov):
        self.port.enqv(iov)

    def control(self, command, data):
        if command == 1:
            self.port.pushq(data)
        elif command == 2:
            return str(self.port.deq(int(data)))
        return b"".join(self.port.peekq())

    def call(self, command, term):
        return self.port.sizeq()

    def flush(self):
        self.port.output_term((Atom("flushing"), self.port.sizeq()))
        self.port.set_timer(50)

    def timeout(self):
        # drain one piece per timeout: the port closes once the queue is empty
        head = self.port.peekq()[0]
        self.port.output_term((Atom("drained"), head))
        self.port.deq(len(head))
        if self.port.sizeq():
            self.port.set_timer(50)
