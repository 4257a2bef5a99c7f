"""call(0, {Prefix, N}) answers a map of N atoms made here, Prefix_0 .. Prefix_N-1, that the
node may not know yet, to their numbers; call(1, Term) answers Term with the pairs of its
maps (outside map keys) in reverse order: the worker must find term_to_binary's order
itself, not keep the one the node decoded."""
import pybridge


def reversed_maps(t):
    if isinstance(t, dict):
        return {k: reversed_maps(v) for k, v in reversed(list(t.items()))}
    if isinstance(t, list):
        return [reversed_maps(x) for x in t]
    if type(t) is tuple:
        return tuple(reversed_maps(x) for x in t)
    return t


class MakesAtomMaps(pybridge.Driver):
    def call(self, command, term):
        if command == 1:
            return reversed_maps(term)
        prefix, n = term
        return {pybridge.Atom(f"{prefix.decode()}_{i}"): i for i in range(n)}


class MakesAtomMapsOnItsThread(MakesAtomMaps):
    """The same under port-level locking: the worker asks from the port's own thread."""

    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING


class MakesAtomMapsAsync(MakesAtomMaps):
    """The same as a coroutine: the reply is encoded when the coroutine ends."""

    async def call(self, command, term):
        return MakesAtomMaps.call(self, command, term)
