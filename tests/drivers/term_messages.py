"""output_term / send_term: the man page's examples, and send_term to several pids."""
import pybridge
from pybridge import Atom, ImproperList


class TermMessages(pybridge.Driver):
    def control(self, command, data):
        p = self.port
        if command == 1:
            p.output_term((Atom("tcp"), p, ImproperList([100], b"Binary")))
        elif command == 2:
            p.output_term([Atom("x"), [97, 98, 99], Atom("y")])
        elif command == 3:
            p.output_term(list(b"abc123"))
        elif command == 4:
            p.output_term((Atom("my_tag"), (17, 4711)))
        elif command == 5:
            p.output_term({Atom("key1"): 100, Atom("key2"): (200, 300)})
        elif command == 6:
            p.send_term(p.caller(), (Atom("to_caller"), p.caller(), p.connected()))
        elif command == 7:
            # the pid and the port deep among plain terms (the program's slow path)
            p.output_term((1, [Atom("a"), (b"x", [p.caller()])], {Atom("p"): [p]}, 2.5))
        return None

    def call(self, command, term):
        # the pid came inside a term: send_term reaches it too
        self.port.send_term(term, (Atom("to_pid_in_term"), self.port))
        return Atom("sent")
