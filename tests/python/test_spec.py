"""pybridge.spec: the driver term format evaluated in Python; malformed specs raise."""
import pytest

from pybridge import Atom, ImproperList
from pybridge._encode import encode
from pybridge.spec import *  # noqa: F403


def test_man_page_examples():
    assert evaluate([ERL_DRV_ATOM, Atom("x"), ERL_DRV_STRING, b"abc", 3, ERL_DRV_ATOM, Atom("y"),
                     ERL_DRV_NIL, ERL_DRV_LIST, 4]) == [Atom("x"), [97, 98, 99], Atom("y")]
    assert evaluate([ERL_DRV_STRING, b"123", 3, ERL_DRV_STRING_CONS, b"abc", 3]) == list(b"abc123")
    assert evaluate([ERL_DRV_ATOM, Atom("my_tag"), ERL_DRV_INT, 17, ERL_DRV_INT, 4711,
                     ERL_DRV_TUPLE, 2, ERL_DRV_TUPLE, 2]) == (Atom("my_tag"), (17, 4711))


def test_list_with_a_tail_and_binary_slices():
    assert evaluate([ERL_DRV_INT, 100, ERL_DRV_BINARY, b"xxBinary", 6, 2, ERL_DRV_LIST, 2]) \
        == ImproperList([100], b"Binary")
    assert evaluate([ERL_DRV_EXT2TERM, encode((1, 2)), len(encode((1, 2)))]) == (1, 2)


@pytest.mark.parametrize("spec", [
    [],                                               # no term
    [ERL_DRV_NIL, ERL_DRV_NIL],                       # two terms
    [ERL_DRV_TUPLE, 1],                               # tuple of nothing built
    [ERL_DRV_INT, 1, ERL_DRV_LIST, 0],                # a list needs its tail
    [ERL_DRV_INT],                                    # missing operand
    [ERL_DRV_INT, 1 << 64],                           # out of range
    [ERL_DRV_UINT, -1],
    [ERL_DRV_FLOAT, 1],
    [ERL_DRV_BINARY, b"ab", 3, 0],                    # length past the data
    [ERL_DRV_BINARY, b"ab", 2, 1],                    # offset past the data
    [ERL_DRV_STRING_CONS, b"ab", 2],                  # nothing to cons onto
    [ERL_DRV_INT, 1, ERL_DRV_INT, 10, ERL_DRV_INT, 1, ERL_DRV_INT, 20,
     ERL_DRV_MAP, 2],                                 # equal keys
    [ERL_DRV_EXT2TERM, b"\x83zz", 3],                 # bad external format
    [ERL_DRV_PID, "not a pid"],
    [99],                                             # unknown operation
])
def test_malformed_specs_raise(spec):
    with pytest.raises(SpecError):
        evaluate(spec)


def test_convert_time_unit_and_errno_id():
    import errno

    from pybridge import Port
    assert Port.convert_time_unit(1500, "millisecond", "second") == 1
    assert Port.convert_time_unit(-1, "nanosecond", "microsecond") == -1   # rounds down
    assert Port.convert_time_unit(2, "second", "microsecond") == 2_000_000
    assert Port.errno_id(errno.EAGAIN) == "eagain"
    assert Port.errno_id(99999) == "unknown"
