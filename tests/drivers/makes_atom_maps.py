"""call(0, {Prefix, N}) answers a map of N atoms made here, Prefix_0 .. Prefix_N-1, that the
node may not know yet, to their numbers; call(1, Term) answers Term."""
import pybridge


class MakesAtomMaps(pybridge.Driver):
    def call(self, command, term):
        if command == 1:
            return term
        prefix, n = term
        return {pybridge.Atom(f"{prefix.decode()}_{i}"): i for i in range(n)}
