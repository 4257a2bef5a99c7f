"""control(N, _) sends TERMS[N] with output_term, on the thread that runs the port's
callbacks or, with command 100 + N, from a thread it starts (the handle routes it to the
port's thread; an exception there is the thread's); call(_, term) answers the term it got,
or TERMS[N] for a call of {term, N}."""
import threading

import pybridge
from pybridge import Atom

TERMS = [
    (Atom("ok"), 42, b"hello", 3.5, Atom("done")),
    (None, True, False, -1, 255, 256, -2 ** 31, 2 ** 31 - 1, "text", "héllo", [], ()),
    (2 ** 31, [1, 2], {Atom("k"): b"v"}, bytearray(b"ba")),
    Atom("fresh_atom_of_sends_terms"),
    "\ud800",
    float("nan"),
]


class SendsTerms(pybridge.Driver):
    def control(self, command, data):
        if command >= 100:
            threading.Thread(target=self.port.output_term, args=(TERMS[command - 100],),
                             daemon=True).start()
        else:
            self.port.output_term(TERMS[command])
        return b""

    def call(self, command, term):
        if isinstance(term, tuple) and term[:1] == (Atom("term"),):
            return TERMS[term[1]]
        return term
