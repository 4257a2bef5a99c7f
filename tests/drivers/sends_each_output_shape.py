"""control(N, data) sends data through the output shape N (the compiled handle's fast shapes,
their edges, and those it hands to Port's own methods); output(data) echoes it as output
and outputv, so a PY_OUTPUT's dispatch and both sends are seen at once."""
import pybridge

SHAPES = [
    lambda p, d: p.output(d),
    lambda p, d: p.output(bytearray(d)),
    lambda p, d: p.output(memoryview(d)),
    lambda p, d: p.outputv(b"", [d]),
    lambda p, d: p.outputv(b"", (d,)),
    lambda p, d: p.outputv(b"", [d], 0),
    lambda p, d: p.outputv(b"", [d], skip=0),
    lambda p, d: p.outputv(b"", [bytearray(d)]),
    lambda p, d: p.outputv(b"h", [d]),
    lambda p, d: p.outputv(b"", [d], 1),
    lambda p, d: p.outputv(bytearray(), [d]),
    lambda p, d: p.outputv(b"", [d, d]),
    lambda p, d: p.output(data=d),
    lambda p, d: p.output("text"),
    lambda p, d: p.output(),
    lambda p, d: p.outputv(b"", [d], True),
]


class SendsEachOutputShape(pybridge.Driver):
    def control(self, command, data):
        SHAPES[command](self.port, data)
        return b""

    def output(self, data):
        self.port.output(data)
        self.port.outputv(b"", [data])
