"""zero_copy = True with outputv(iov): says what each piece is (b"Type Readonly Len" each,
joined by commas), then echoes the pieces as they came."""
import pybridge


class ZeroCopyOutputv(pybridge.Driver):
    zero_copy = True

    def outputv(self, iov):
        self.port.output(b",".join(f"{type(p).__name__} {p.readonly} {len(p)}".encode()
                                   for p in iov))
        self.port.outputv(b"", iov)
