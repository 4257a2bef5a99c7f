"""Tests for the ETF codec (pybridge._encode, pybridge._decode): round trips, byte equality
with OTP and with erlang-py, and rejection of malformed input."""
import math
import pickle
import random
import struct
import subprocess
import time
import zlib

import erlang
import pytest

from pybridge._decode import decode, decode_from
from pybridge._encode import encode, use_latin1_atoms
from pybridge._types import (
    Atom,
    BitString,
    DecodeError,
    EncodeError,
    ImproperList,
    ImproperListKey,
    ListKey,
    MapKey,
)

# ------------------------------------------------------------- generators

_NAME_CHARS = "abcxyz_@.ABC09éßñЖжλ中文🙂\U0001F600 '"
_RESERVED = {"true", "false", "undefined"}


def gen_atom(rng):
    if rng.random() < 0.02:  # at the length limit, multi-byte: ATOM_UTF8_EXT
        return Atom("".join(rng.choice("éЖ中🙂a") for _ in range(255)))
    name = "".join(rng.choice(_NAME_CHARS) for _ in range(rng.randrange(0, 9)))
    return Atom(name + "_") if name in _RESERVED else Atom(name)


def gen_int(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randrange(256)
    if kind == 1:
        return rng.randrange(-2**31, 2**31)
    if kind == 2:
        return rng.choice([255, 256, -1, 2**31 - 1, 2**31, -2**31, -2**31 - 1])
    if kind == 3:
        return rng.choice([1, -1]) * rng.randrange(2**31, 2**rng.randrange(32, 200))
    if kind == 4:  # around the SMALL_BIG/LARGE_BIG boundary (255 magnitude bytes)
        return rng.choice([1, -1]) * (256**255 + rng.randrange(-3, 3))
    return rng.randrange(-1000, 1000)


def gen_float(rng):
    if rng.random() < 0.2:
        return rng.choice([0.0, -0.0, 1.0, -1.5, 1e308, -1e-308, 5e-324, 0.1])
    return rng.uniform(-1e6, 1e6) * 10 ** rng.randrange(-20, 20)


def gen_bitstring(rng):
    bits = rng.randrange(1, 8)
    raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
    # OTP writes the unused low bits of the last byte as zeros.
    return BitString(raw[:-1] + bytes((raw[-1] & (0xFF << (8 - bits)) & 0xFF,)), bits)


def gen_leaf(rng):
    kind = rng.randrange(10)
    if kind == 0:
        return gen_int(rng)
    if kind == 1:
        return gen_float(rng)
    if kind == 2:
        return gen_atom(rng)
    if kind == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
    if kind == 4:
        return "".join(rng.choice(_NAME_CHARS) for _ in range(rng.randrange(0, 8)))
    if kind == 5:
        return rng.choice([None, True, False])
    if kind == 6:
        return gen_bitstring(rng)
    if kind == 7:
        return []
    return rng.randrange(256)


def gen_key(rng, depth):
    """A hashable term usable as a dict key."""
    if depth >= 2 or rng.random() < 0.6:
        leaf = gen_leaf(rng)
        return ListKey() if type(leaf) is list else leaf
    kind = rng.randrange(4)
    items = [gen_key(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if kind == 0:
        return tuple(items)
    if kind == 1:
        return ListKey(items)
    if kind == 2:
        return ImproperListKey(items or [1], gen_leaf_not_list(rng))
    return MapKey(gen_dict(rng, depth + 1, gen_key).items())


def gen_leaf_not_list(rng):
    while True:
        leaf = gen_leaf(rng)
        if not isinstance(leaf, list):
            return leaf


def gen_dict(rng, depth, value_gen):
    size = rng.randrange(33, 45) if rng.random() < 0.03 else rng.randrange(0, 7)
    result, seen = {}, set()
    for _ in range(size):
        key = gen_key(rng, depth + 1)
        if norm_key(key) in seen:  # "a" and b"a" are the same Erlang key
            continue
        seen.add(norm_key(key))
        result[key] = value_gen(rng, depth + 1)
    return result


def gen_term(rng, depth=0):
    if depth >= 4 or rng.random() < 0.4:
        return gen_leaf(rng)
    kind = rng.randrange(7)
    if kind == 0:
        n = 300 if rng.random() < 0.01 else rng.randrange(0, 6)  # LARGE_TUPLE_EXT
        return tuple(gen_term(rng, depth + 1) for _ in range(n))
    if kind == 1:
        return [gen_term(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    if kind == 2:  # STRING_EXT candidates
        return [rng.randrange(256) for _ in range(rng.randrange(0, 20))]
    if kind == 3:
        items = [gen_term(rng, depth + 1) for _ in range(rng.randrange(1, 4))]
        return ImproperList(items, gen_leaf_not_list(rng))
    return gen_dict(rng, depth, gen_term)


def random_terms(seed, count):
    rng = random.Random(seed)
    return [gen_term(rng) for _ in range(count)]


# ---------------------------------------------------- expected decode results

def norm(t):
    """What decode(encode(t)) should return: str and bytes-likes become bytes."""
    if isinstance(t, str):
        return t.encode("utf-8")
    if isinstance(t, (bytearray, memoryview)):
        return bytes(t)
    if type(t) is tuple:
        return tuple(map(norm, t))
    if type(t) is list:
        return list(map(norm, t))
    if type(t) is dict:
        return {norm_key(k): norm(v) for k, v in t.items()}
    if type(t) is ImproperList:
        return ImproperList(map(norm, t.items), norm(t.tail))
    return norm_key(t)


def norm_key(t):
    if isinstance(t, str):
        return t.encode("utf-8")
    if type(t) is tuple:
        return tuple(map(norm_key, t))
    if type(t) is ListKey:
        return ListKey(map(norm_key, t))
    if type(t) is MapKey:
        return MapKey((norm_key(k), norm_key(v)) for k, v in t.items)
    if type(t) is ImproperListKey:
        return ImproperListKey(map(norm_key, t.items), norm_key(t.tail))
    return t


def has_big_map(t):
    """OTP writes maps over 32 keys in hash order, so bytes differ from ours."""
    if isinstance(t, dict):
        return len(t) > 32 or any(has_big_map(k) or has_big_map(v) for k, v in t.items())
    if isinstance(t, MapKey):
        return len(t.items) > 32 or any(has_big_map(k) or has_big_map(v) for k, v in t.items)
    if isinstance(t, (tuple, list)):
        return any(map(has_big_map, t))
    if isinstance(t, ImproperList):
        return any(map(has_big_map, t.items)) or has_big_map(t.tail)
    return False


# ----------------------------------------------------------------- round trips

HAND_WRITTEN = [
    0, 1, 255, 256, -1, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**64, -2**64,
    256**255 - 1, 256**255, -(256**255), 10**1000,
    0.0, -0.0, 1.5, -2.25e-300, 1.7976931348623157e308, 5e-324,
    Atom("ok"), Atom(""), Atom("héllo"), Atom("ключ"), Atom("🙂" * 255), Atom("a" * 255),
    True, False, None, b"", b"hello", bytes(range(256)) * 10,
    (), (1,), (Atom("ok"), 42, b"hello"), tuple(range(256)), tuple(range(300)),
    [], [1, 2, 3], [0] * 65535, [0] * 65536, list(range(256)), [256], [-1], [True, False],
    [[]], [[], [[]]], [1, Atom("a"), (b"x",)], [1.0, 2],
    ImproperList([1], 2), ImproperList([1, 2], Atom("tail")), ImproperList([[]], b"t"),
    {}, {Atom("a"): 1}, {1: 2, 1.5: 3, Atom("z"): 4, b"b": 5, (1,): 6, ListKey(): 7},
    {ListKey([1, 2]): Atom("list"), (ListKey([1]), 2): Atom("tuple_with_list")},
    {MapKey({Atom("k"): 1}): 1, ImproperListKey([1], 2): 2},
    # Erlang compares lists cell by cell and bit strings bit by bit.
    {ListKey([1, 2]): 1, ImproperListKey([1], b"a"): 2, ImproperListKey([1], Atom("x")): 3,
     ListKey([1]): 4, ImproperListKey([1], 5): 5, ListKey([1, Atom("a")]): 6},
    {b"\x00": 1, BitString(b"\x80", 1): 2, b"": 3, BitString(b"\x00", 1): 4,
     BitString(b"\x00\x80", 2): 5, b"\x00\x80": 6},
    {i: i * i for i in range(100)},
    BitString(b"\xe0", 3), BitString(b"\x01\x02\x80", 1),
    {Atom("nested"): {Atom("deeper"): [{1: (None, True)}]}},
]


@pytest.mark.parametrize("term", HAND_WRITTEN, ids=lambda t: repr(t)[:40])
def test_round_trip_hand_written(term):
    assert decode(encode(term)) == norm(term)


def test_round_trip_random():
    for term in random_terms(1, 3000):
        assert decode(encode(term)) == norm(term), term


def test_str_decodes_as_bytes():
    assert decode(encode("héllo")) == "héllo".encode()
    assert decode(encode({"key": ["v"]})) == {b"key": [b"v"]}
    assert encode("abc") == encode(b"abc") == encode(bytearray(b"abc"))
    assert encode(memoryview(b"abc")) == encode(b"abc")


def test_exact_encodings():
    assert encode(0) == b"\x83a\x00"
    assert encode(-1) == b"\x83b\xff\xff\xff\xff"
    assert encode(2**31) == b"\x83n\x04\x00\x00\x00\x00\x80"
    assert encode(-2**32) == b"\x83n\x05\x01\x00\x00\x00\x00\x01"
    assert encode(256**255)[:7] == b"\x83o\x00\x00\x01\x00\x00"
    assert encode(1.5) == b"\x83F" + struct.pack(">d", 1.5)
    assert encode(Atom("ok")) == b"\x83w\x02ok"
    assert encode(Atom("ж" * 200))[:4] == b"\x83v\x01\x90"
    assert encode(True) == b"\x83w\x04true"
    assert encode(None) == b"\x83w\x09undefined"
    assert encode((1, 2)) == b"\x83h\x02a\x01a\x02"
    assert encode([]) == b"\x83j"
    assert encode([1, 2]) == b"\x83k\x00\x02\x01\x02"
    assert encode([True]) == b"\x83l\x00\x00\x00\x01w\x04truej"
    assert encode([0] * 65536)[:6] == b"\x83l\x00\x01\x00\x00"
    assert encode(ImproperList([1], 2)) == b"\x83l\x00\x00\x00\x01a\x01a\x02"
    assert encode(ListKey([1])) == encode([1])
    assert encode(MapKey({1: 2})) == encode({1: 2})
    assert encode({Atom("b"): 1, 2: 3}) == b"\x83t\x00\x00\x00\x02a\x02a\x03w\x01ba\x01"


def test_none_atom():
    assert encode(None, none_atom="nil") == encode(Atom("nil"))
    assert decode(encode(Atom("nil")), none_atom="nil") is None
    assert decode(encode(None)) is None
    assert decode(encode(None), none_atom="nil") == Atom("undefined")
    assert decode(encode(Atom("nil"))) == Atom("nil")


def test_decoded_map_keys_are_hashable_stand_ins():
    # #{[1,2] => a, {[3]} => b, #{k => [4]} => c, [1|2] => d}
    data = (b"\x83t\x00\x00\x00\x04" b"k\x00\x02\x01\x02w\x01a" b"h\x01k\x00\x01\x03w\x01b"
            b"t\x00\x00\x00\x01w\x01kk\x00\x01\x04w\x01c" b"l\x00\x00\x00\x01a\x01a\x02w\x01d")
    result = decode(data)
    assert result == {ListKey([1, 2]): Atom("a"), (ListKey([3]),): Atom("b"),
                      MapKey({Atom("k"): ListKey([4])}): Atom("c"),
                      ImproperListKey([1], 2): Atom("d")}
    assert ListKey([1, 2]) != (1, 2) and hash(ListKey([1, 2])) == hash(ListKey((1, 2)))


def test_types():
    assert Atom("ok") == Atom(b"ok") and Atom("ok") != "ok" and "ok" != Atom("ok")
    assert hash(Atom("ok")) == hash(Atom("ok")) and len({Atom("ok"), "ok"}) == 2
    assert repr(Atom("ok")) == "Atom('ok')" and str(Atom("ok")) == "ok"
    assert pickle.loads(pickle.dumps(Atom("ok"))) == Atom("ok")
    with pytest.raises(AttributeError):
        Atom("ok").name = "changed"
    assert ImproperList([1], 2) == ImproperList((1,), 2) != ImproperList([1], 3)
    assert repr(ImproperList([1], 2)) == "ImproperList([1], 2)"
    assert ImproperList([1], 2) != ImproperListKey([1], 2)
    with pytest.raises(TypeError):
        hash(ImproperList([1], 2))
    assert MapKey({1: 2, 3: 4}) == MapKey([(3, 4), (1, 2)])
    assert issubclass(DecodeError, ValueError) and issubclass(EncodeError, TypeError)


def test_decode_accepts_buffers_and_decode_from_offsets():
    first, second = encode((Atom("a"), [1])), encode({b"k": 2.5})
    assert decode(bytearray(first)) == decode(memoryview(first)) == (Atom("a"), [1])
    buf = b"xyz" + first[1:] + second[1:]
    term, end = decode_from(buf, 3)
    assert term == (Atom("a"), [1]) and end == len(first) + 2
    assert decode_from(memoryview(buf), end) == ({b"k": 2.5}, len(buf))
    with pytest.raises(DecodeError):
        decode_from(buf, len(buf))
    with pytest.raises(DecodeError):
        decode_from(buf, -1)


def test_decode_other_encodings():
    assert decode(b"\x83d\x00\x05h\xe9llo") == Atom("héllo")  # ATOM_EXT is latin-1
    assert decode(b"\x83s\x04true") is True
    assert decode(b"\x83v\x00\x02ok") == Atom("ok")
    assert decode(b"\x83c" + b"1.50000000000000000000e+00".ljust(31, b"\0")) == 1.5
    assert decode(b"\x83o\x00\x00\x00\x01\x01\x05") == -5
    # [1 | [2 | []]] written cell by cell, and a 0-length LIST_EXT before a tail
    assert decode(b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02j") == [1, 2]
    assert decode(b"\x83l\x00\x00\x00\x01a\x01k\x00\x01\x02") == [1, 2]
    assert decode(b"\x83l\x00\x00\x00\x00a\x05") == 5
    assert decode(b"\x83M\x00\x00\x00\x01\x03\xe0") == BitString(b"\xe0", 3)
    assert decode(b"\x83M\x00\x00\x00\x01\x08\x05") == b"\x05"
    body = encode([Atom("x")] * 100)[1:]
    packed = b"\x83P" + struct.pack(">I", len(body)) + zlib.compress(body)
    assert decode(packed) == [Atom("x")] * 100
    assert decode_from(packed + b"rest", 1) == ([Atom("x")] * 100, len(packed))


# ----------------------------------------------------------- erlang-py parity

def gen_shared(rng, depth=0):
    """A term with the same meaning in pybridge and erlang-py: (ours, theirs)."""
    kind = rng.randrange(7 if depth < 3 else 5)
    if kind == 0:
        value = gen_int(rng)
        return value, value
    if kind == 1:
        value = gen_float(rng)
        return value, value
    if kind == 2:
        atom = gen_atom(rng)
        return atom, erlang.OtpErlangAtom(atom.name)
    if kind == 3:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 10)))
        return raw, erlang.OtpErlangBinary(raw)
    if kind == 4:
        value = rng.choice([None, True, False])
        return value, value
    pairs = [gen_shared(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if kind == 5:
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    # a list erlang-py writes as OTP does: not a STRING_EXT candidate
    pairs.append((Atom("end"), erlang.OtpErlangAtom("end")))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_matches_erlang_py():
    rng = random.Random(2)
    for _ in range(2000):
        ours, theirs = gen_shared(rng)
        data = erlang.term_to_binary(theirs)
        assert encode(ours) == data, ours
        assert decode(data) == ours


def test_erlang_py_objects_encode_as_themselves():
    pid = erlang.OtpErlangPid(erlang.OtpErlangAtom("n@h"), b"\0\0\0\1", b"\0\0\0\0", b"\0\0\0\1")
    for obj in [pid, erlang.OtpErlangAtom("x"),
                erlang.OtpErlangBinary(b"ab"), erlang.OtpErlangList([1, 2], improper=True)]:
        assert encode(obj) == b"\x83" + obj.binary()
    # an atom erlang-py read from ATOM_EXT is written as term_to_binary writes atoms
    assert encode(erlang.OtpErlangAtom(b"x")) == encode(Atom("x"))
    assert decode(encode(pid)) == pid
    assert decode(encode((pid, [pid]))) == (pid, [pid])


# ------------------------------------------------------------ OTP equivalence

ERLANG_SIDE = r"""
Write = fun(Fd, B) -> ok = file:write(Fd, [<<(byte_size(B)):32>>, B]) end,
V2 = fun(T) -> term_to_binary(T, [{minor_version, @MINOR@}]) end,
try
    {ok, In} = file:read_file("@IN@"),
    {ok, Fd} = file:open("@OUT@", [write, raw, binary]),
    [Write(Fd, V2(binary_to_term(B))) || <<N:32, B:N/binary>> <= In],
    {Port, Ref} = {hd(erlang:ports()), make_ref()},
    Exotic = {self(), Ref, Port, fun erlang:abs/1, fun(X) -> {X, Port} end,
              <<1:3>>, <<1, 2, 3:5>>, [self() | Ref]},
    Write(Fd, V2(Exotic)),
    Plain = {ok, list_to_atom([$h, 233, $l, $l, $o]), list_to_atom([1082, 1083]), "str",
             [a, b | c], #{[1] => {x}, #{a => [1]} => [2], 1.0 => 1, b => 2},
             -(1 bsl 70), 1.5, lists:seq(1, 3000), <<"bin">>},
    [Write(Fd, E) || E <- [V2(Plain), term_to_binary(Plain), term_to_binary(Plain, [compressed])]],
    ok = file:close(Fd),
    halt(0)
catch C:R:S -> io:format("~p~n", [{C, R, S}]), halt(1)
end.
"""


def pack_blobs(blobs):
    return b"".join(struct.pack(">I", len(b)) + b for b in blobs)


def unpack_blobs(data):
    blobs, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from(">I", data, i)
        blobs.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return blobs


@pytest.fixture(params=[1, 2], ids=["minor_version_1", "minor_version_2"])
def minor(request):
    """The atom encoding of OTP's term_to_binary minor_version 1 (OTP 25's default: Latin-1
    atoms as ATOM_EXT) or 2 (OTP 26's), as the worker picks it for its node."""
    use_latin1_atoms(request.param == 1)
    yield request.param
    use_latin1_atoms(False)


def test_matches_otp(tmp_path, minor):
    terms = HAND_WRITTEN + random_terms(3, 2000)
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(pack_blobs([encode(t) for t in terms]))
    code = (ERLANG_SIDE.replace("@IN@", str(src)).replace("@OUT@", str(dst))
            .replace("@MINOR@", str(minor)))
    assert '"' not in str(tmp_path) and "\\" not in str(tmp_path)
    # Not skipped when erl is missing: FileNotFoundError fails the test.
    proc = subprocess.run(["erl", "-noshell", "-eval", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = unpack_blobs(dst.read_bytes())
    assert len(out) == len(terms) + 4
    checked = 0
    for term, otp in zip(terms, out, strict=False):
        ours = encode(term)
        if not has_big_map(term):
            assert otp == ours, term
            checked += 1
        assert decode(otp) == norm(term), term
    assert checked > len(terms) * 0.9

    exotic = out[len(terms)]
    pid, ref, port, export, fun, bits3, bits29, improper = decode(exotic)
    assert isinstance(pid, erlang.OtpErlangPid) and isinstance(ref, erlang.OtpErlangReference)
    assert isinstance(port, erlang.OtpErlangPort)
    assert export.tag == 113 and fun.tag == 112
    assert bits3 == BitString(b"\x20", 3) and bits29 == BitString(b"\x01\x02\x18", 5)
    assert improper == ImproperList([pid], ref)
    assert encode(decode(exotic)) == exotic

    v2, default, compressed = out[len(terms) + 1:]
    plain = decode(v2)
    assert plain[:4] == (Atom("ok"), Atom("héllo"), Atom("кл"), [115, 116, 114])
    assert plain[4:6] == (ImproperList([Atom("a"), Atom("b")], Atom("c")),
                          {ListKey([1]): (Atom("x"),), MapKey({Atom("a"): ListKey([1])}): [2],
                           1.0: 1, Atom("b"): 2})
    assert encode(plain) == v2
    assert decode(default) == plain
    # the running OTP's term_to_binary/1: the worker reads which from its node's pid
    # (an ATOM_EXT node name: minor_version 1), as here from Plain's first atom, ok
    use_latin1_atoms(default[3] == 100)
    assert encode(plain) == default
    assert compressed[1] == 80 and decode(compressed) == plain


# ------------------------------------------------------------ malformed input

def test_truncated_prefixes():
    for term in HAND_WRITTEN[:60] + random_terms(4, 300):
        data = encode(term)
        step = max(1, len(data) // 200)
        for k in range(0, len(data), step):
            with pytest.raises(DecodeError):
                decode(data[:k])


def test_random_and_mutated_bytes():
    rng = random.Random(5)
    valid = [encode(t) for t in random_terms(6, 300)]
    tags = [70, 77, 80, 88, 89, 90, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
            108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 78]
    for _ in range(20000):
        kind = rng.randrange(3)
        if kind == 0:
            data = b"\x83" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        elif kind == 1:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(1, len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = b"\x83" + bytes([rng.choice(tags)]) + bytes(
                rng.choice([0, 1, 2, 255, rng.randrange(256)]) for _ in range(rng.randrange(0, 40)))
        start = time.perf_counter()
        try:
            term = decode(data)
        except DecodeError:
            continue
        finally:
            assert time.perf_counter() - start < 0.5, data
        try:  # whatever decodes must encode, or be refused with EncodeError
            encode(term)
        except EncodeError:
            pass


HUGE = [
    b"m\xff\xff\xff\xff", b"k\xff\xff", b"l\xff\xff\xff\xff", b"h\xff", b"i\xff\xff\xff\xff",
    b"t\xff\xff\xff\xff", b"n\xff\x00", b"o\xff\xff\xff\xff\x00", b"M\xff\xff\xff\xff\x03",
    b"v\xff\xff", b"w\xff", b"d\xff\xff", b"s\xff", b"P\xff\xff\xff\xff",
    b"p\xff\xff\xff\xff", b"u\xff\xff\xff\xff", b"Z\xff\xffw\x01a\x00\x00\x00\x00",
    b"X\xff",
]


@pytest.mark.parametrize("head", HUGE)
def test_huge_length_fields(head):
    data = b"\x83" + head + b"\x00" * 14
    start = time.perf_counter()
    with pytest.raises(DecodeError):
        decode(data)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize("data", [
    b"", b"\x82a\x01", b"a\x01", b"\x83", b"\x83a\x01\x00",  # no version, trailing data
    b"\x83\xff", b"\x83N\x00",  # unknown tag, atom cache reference
    b"\x83w\x02\xff\xfe",  # invalid UTF-8 atom
    b"\x83F\x7f\xf8\x00\x00\x00\x00\x00\x00", b"\x83F\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"\x83c" + b"nonsense".ljust(31, b"\0"),
    b"\x83t\x00\x00\x00\x02a\x01a\x02a\x01a\x03",  # duplicate key
    b"\x83M\x00\x00\x00\x01\x00\x05", b"\x83M\x00\x00\x00\x01\x09\x05",
    b"\x83P\x00\x00\x00\x00" + zlib.compress(b"a\x01"),
    b"\x83P\x00\x00\x00\x01" + zlib.compress(b"a\x01"),  # inflates past its size
    b"\x83P\x00\x00\x00\x03" + zlib.compress(b"a\x01"),
    b"\x83P\x00\x00\x00\x02" + zlib.compress(b"a\x01")[:-3],
    b"\x83P\x00\x00\x00\x02not zlib",
    b"\x83P\x00\x00\x00\x02" + zlib.compress(b"\x83a"),
    b"\x83h\x01P\x00\x00\x00\x02" + zlib.compress(b"a\x01"),  # only valid outermost
    b"\x83" + b"h\x01" * 100000 + b"a\x01",
    b"\x83" + b"l\x00\x00\x00\x01" * 100000 + b"j",
    b"\x83p\x00\x00\x00\x02", b"\x83u\x00\x00\x00\x00a\x01",
])
def test_malformed(data):
    start = time.perf_counter()
    with pytest.raises(DecodeError):
        decode(data)
    assert time.perf_counter() - start < 0.5


def test_decode_rejects_non_buffers():
    with pytest.raises(TypeError):
        decode("\x83a\x01")


# ------------------------------------------------------------- encode errors

class Custom:
    pass


@pytest.mark.parametrize("term", [
    {1, 2}, frozenset(), object(), Custom(), 1j, math.nan, math.inf, -math.inf,
    [1, {2}], (1, object()), {Atom("k"): Custom()}, {(1, object()): 1},
    Atom("a" * 256), ImproperList([], 1), ImproperList([1], [2]),
    ImproperList([1], ListKey([2])), {"a": 1, b"a": 2}, {True: 1, Atom("true"): 2},
    "\ud800", Atom("\ud800"),
])
def test_encode_errors(term):
    with pytest.raises(EncodeError):
        encode(term)


def test_encode_error_names_type():
    with pytest.raises(EncodeError, match="Custom"):
        encode([Custom()])


def test_encode_cyclic_or_deep():
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(EncodeError):
        encode(cyclic)
    deep = []
    for _ in range(100000):
        deep = [deep]
    with pytest.raises(EncodeError):
        encode(deep)
