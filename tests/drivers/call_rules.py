"""call's reply rules: BadArg, other exceptions, unencodable results."""
import pybridge


class CallRules(pybridge.Driver):
    def call(self, command, term):
        if command == 1:
            raise pybridge.BadArg("no")
        if command == 2:
            raise KeyError("missing")
        if command == 3:
            return object()
        return (pybridge.Atom("ok"), term)
