"""none_atom = "nil": None maps to nil, as Elixir code expects."""
import pybridge


class NilAtom(pybridge.Driver):
    none_atom = "nil"

    def call(self, command, term):
        return (term is None, None)
