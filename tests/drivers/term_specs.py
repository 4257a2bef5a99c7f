"""The erl_driver man page's driver term format examples, as specs; 9 is malformed."""
import pybridge
from pybridge import Atom
from pybridge.spec import *  # noqa: F403


class TermSpecs(pybridge.Driver):
    def control(self, command, data):
        p = self.port
        binary = b"Binary"
        specs = {
            1: [ERL_DRV_ATOM, Atom("tcp"), ERL_DRV_PORT, p, ERL_DRV_INT, 100,
                ERL_DRV_BINARY, binary, len(binary), 0, ERL_DRV_LIST, 2, ERL_DRV_TUPLE, 3],
            2: [ERL_DRV_ATOM, Atom("x"), ERL_DRV_STRING, b"abc", 3, ERL_DRV_ATOM, Atom("y"),
                ERL_DRV_NIL, ERL_DRV_LIST, 4],
            3: [ERL_DRV_STRING, b"123", 3, ERL_DRV_STRING_CONS, b"abc", 3],
            4: [ERL_DRV_ATOM, Atom("my_tag"), ERL_DRV_INT, 17, ERL_DRV_INT, 4711,
                ERL_DRV_TUPLE, 2, ERL_DRV_TUPLE, 2],
            5: [ERL_DRV_ATOM, Atom("key1"), ERL_DRV_INT, 100, ERL_DRV_ATOM, Atom("key2"),
                ERL_DRV_INT, 200, ERL_DRV_INT, 300, ERL_DRV_TUPLE, 2, ERL_DRV_MAP, 2],
            6: [ERL_DRV_PID, p.caller(), ERL_DRV_UINT64, 1 << 63, ERL_DRV_FLOAT, 1.5,
                ERL_DRV_BUF2BINARY, b"buf", 3, ERL_DRV_TUPLE, 4],
            9: [ERL_DRV_ATOM, Atom("x"), ERL_DRV_TUPLE, 2],
        }
        p.output_term_spec(specs[command])
        return None
