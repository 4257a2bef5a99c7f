"""output() of every kind of buffer: control 0 sends the data given as bytes, bytearray,
memoryview, array.array('B'), array.array('d') (its bytes) and a non-contiguous memoryview
(every other byte); control 3 the data as array.array('B') through outputv (one piece,
then two with a header), output2 and output_binary (bytes 1 to 4); control 1 N sends a
bytearray of N bytes (a large one makes the port set up its shared memory), control 2 N
the same and answers the most Python allocated, at its peak, meanwhile (tracemalloc)."""
import array
import tracemalloc

import pybridge


class BufferOutputs(pybridge.Driver):
    def control(self, command, data):
        if command == 0:
            for kind in (bytes, bytearray, memoryview, lambda d: array.array("B", d)):
                self.port.output(kind(data))
            doubles = array.array("d", [1.5, -2.25])
            self.port.output(doubles)
            self.port.output(memoryview(data)[::2])
            return b"sent"
        if command == 3:
            arr = array.array("B", data)
            self.port.outputv(b"", [arr])
            self.port.outputv(b"h", [arr, memoryview(data)])
            self.port.output2(b"h", arr)
            self.port.output_binary(b"h", arr, 1, 3)
            return b"sent"
        buf = bytearray(b"\x07") * int(data)
        if command == 1:
            self.port.output(buf)
            return b"sent"
        tracemalloc.start()
        try:
            self.port.output(buf)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return str(peak).encode()
