"""Maps of more than 32 keys (HAMTs in OTP) encode byte for byte as the running node's
term_to_binary/1 writes them, for every key type, against a real node; without the node's
facts, a map whose keys hold atoms still encodes to the right term; encode's learn (the
worker's requests for atom indices, pybridge._runtime.atoms) asks once per term, only for
what it needs (erlang/test/pybridge_big_maps_tests.erl: the same through a real worker)."""
import os
import random
import struct
import subprocess
import time

import erlang
import pytest
from test_codec import (
    gen_atom,
    gen_bitstring,
    gen_float,
    gen_key,
    norm,
    norm_key,
    pack_blobs,
    unpack_blobs,
)

from pybridge._decode import decode
from pybridge._encode import _order, encode, use_latin1_atoms, use_node_facts
from pybridge._maphash import NodeFacts, internal_hash
from pybridge._types import Atom, EncodeError, ImproperListKey, ListKey, MapKey

# Phase 1 makes the test's atoms and tells their hashes (erts_debug's internal_hash, an
# OTP test feature: the only way to learn an atom's index in the atom table), the table
# sizes, the atom count and some local pids, ports and refs; phase 2 re-encodes the terms.
ERLANG_SIDE = r"""
Wait = fun W(F, 0) -> error({no_input, F});
           W(F, N) -> case file:read_file(F) of {ok, B} -> B; _ -> timer:sleep(20), W(F, N - 1) end
       end,
Put = fun(F, Data) -> ok = file:write_file(F ++ ".tmp", Data), ok = file:rename(F ++ ".tmp", F) end,
try
    erts_debug:set_internal_state(available_internal_state, true),
    Names = binary_to_term(Wait("@DIR@/atoms.bin", 3000)),
    Hashes = [erts_debug:get_internal_state({internal_hash, A}) || A <- Names],
    Pids = [self() | [c:pid(0, I * 7919 rem 32768, I * 7919 div 32768) || I <- lists:seq(1, 300)]],
    Ports = [list_to_port("#Port<0." ++ integer_to_list(I * 211) ++ ">")
             || I <- lists:seq(0, 299)],
    Refs = [make_ref() || _ <- lists:seq(1, 300)],
    Facts = {Hashes, erlang:system_info(atom_count), erlang:system_info(process_limit),
             erlang:system_info(port_limit), Pids, Ports, Refs},
    Put("@DIR@/facts.bin", term_to_binary(Facts)),
    In = Wait("@DIR@/terms.bin", 6000),
    Again = fun(B) -> B2 = term_to_binary(binary_to_term(B)), [<<(byte_size(B2)):32>>, B2] end,
    Put("@DIR@/out.bin", [Again(B) || <<N:32, B:N/binary>> <= In]),
    halt(0)
catch C:R:S -> io:format("~p~n", [{C, R, S}]), halt(1)
end.
"""


def _wait(path, proc):
    for _ in range(3000):
        if os.path.exists(path):
            return path.read_bytes() if hasattr(path, "read_bytes") else None
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"the node wrote no {path}")


def _distinct(rng, gen, n):
    keys, seen = [], set()
    while len(keys) < n:
        k = gen(rng)
        if norm_key(k) not in seen:  # "a" and b"a" are the same Erlang key
            seen.add(norm_key(k))
            keys.append(k)
    return keys


def _big_map(rng, gen, n, values=None):
    return {k: (values(rng) if values else rng.randrange(1000)) for k in _distinct(rng, gen, n)}


def _key_types(node_terms):
    pids, ports, refs = node_terms
    small_map = lambda rng: MapKey({gen_atom(rng): rng.randrange(9) for _ in range(3)})  # noqa: E731
    return {
        "atom": gen_atom,
        "small int": lambda rng: rng.randrange(-2**59, 2**59),
        "byte": lambda rng: rng.randrange(-300, 300),
        "big int": lambda rng: rng.choice([1, -1]) * rng.randrange(2**59,
                                                                   2**rng.randrange(60, 400)),
        "float": gen_float,
        "binary": lambda rng: bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))),
        "str": lambda rng: "".join(rng.choice("aé中🙂") for _ in range(rng.randrange(0, 12))),
        "bitstring": gen_bitstring,
        "string list": lambda rng: ListKey(rng.randrange(256) for _ in range(rng.randrange(0, 9))),
        "list": lambda rng: ListKey(gen_key(rng, 1) for _ in range(rng.randrange(0, 5))),
        "improper list": lambda rng: ImproperListKey([rng.randrange(300)] * rng.randrange(1, 6),
                                                     rng.choice([Atom("t"), b"x", 7, 300])),
        "tuple": lambda rng: tuple(gen_key(rng, 1) for _ in range(rng.randrange(0, 5))),
        "small map": small_map,
        "big map": lambda rng: MapKey(_big_map(rng, lambda r: r.randrange(10**6),
                                               rng.randrange(33, 60))),
        "pid": lambda rng: rng.choice(pids),
        "port": lambda rng: rng.choice(ports),
        "ref": lambda rng: rng.choice(refs),
        "mixed": lambda rng: gen_key(rng, 0),
    }


def _terms(seed, node_terms):
    rng = random.Random(seed)
    types = _key_types(node_terms)
    terms = []
    for name, gen in types.items():
        limit = {"pid": 300, "port": 300, "ref": 300, "byte": 600, "big map": 120}.get(name, 2000)
        for n in (33, rng.randrange(34, 100), rng.randrange(100, limit + 1), limit):
            terms.append((name, _big_map(rng, gen, n)))
    # big maps inside big maps, as values and as keys
    terms.append(("nested", _big_map(rng, types["small int"], 40,
                                     lambda r: _big_map(r, types["atom"], 35))))
    terms.append(("big maps as keys", {MapKey(_big_map(rng, types["float"], 33 + i)): i
                                       for i in range(40)}))
    return terms


def _atoms_in(t, acc):
    if isinstance(t, Atom):
        acc.add(t.name)
    elif isinstance(t, (tuple, list)):
        for x in t:
            _atoms_in(x, acc)
    elif isinstance(t, (dict, MapKey)):
        for k, v in (t.items() if isinstance(t, dict) else t.items):
            _atoms_in(k, acc)
            _atoms_in(v, acc)
    elif isinstance(t, ImproperListKey):
        _atoms_in(t.items, acc)
        _atoms_in(t.tail, acc)
    return acc


def _run_node(tmp_path, seed):
    code = ERLANG_SIDE.replace("@DIR@", str(tmp_path))
    assert '"' not in str(tmp_path) and "\\" not in str(tmp_path)
    proc = subprocess.Popen(["erl", "-noshell", "-eval", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        # the atoms of the terms, made with placeholder pids (phase 1 gives the real ones)
        stand_in = tuple([erlang.OtpErlangPid(erlang.OtpErlangAtom(b"x"), i.to_bytes(4, "big"),
                                              b"\0" * 4, b"\0" * 4) for i in range(n)]
                         for n in (301, 300, 300))  # as many distinct terms: the same draws
        names = sorted(set().union(*(_atoms_in(t, set()) for _, t in _terms(seed, stand_in))),
                       key=lambda a: a.encode())
        names += ["true", "false", "undefined"]
        # written whole, then renamed: the node polls for the file and must not read half
        (tmp_path / "atoms.tmp").write_bytes(encode([Atom(a) for a in names]))
        os.rename(tmp_path / "atoms.tmp", tmp_path / "atoms.bin")
        hashes, count, process_limit, port_limit, *node_terms = decode(
            _wait(tmp_path / "facts.bin", proc))
        pid = node_terms[0][0]
        facts = NodeFacts(pid.node.value.decode("latin-1") if isinstance(pid.node.value, bytes)
                          else str(pid.node.value), int.from_bytes(pid.creation, "big"),
                          process_limit, port_limit)
        by_hash = {internal_hash(Atom("?"), "?", lambda _n, i=i: i, _order): i
                   for i in range(count)}
        index = {name: by_hash[h] for name, h in zip(names, hashes, strict=True)}
        terms = _terms(seed, node_terms)
        use_node_facts(index.get, facts)
        ours = [encode(t) for _, t in terms]
        (tmp_path / "terms.tmp").write_bytes(pack_blobs(ours))
        os.rename(tmp_path / "terms.tmp", tmp_path / "terms.bin")
        otp = unpack_blobs(_wait(tmp_path / "out.bin", proc))
        assert proc.wait(timeout=120) == 0, proc.communicate()
        return terms, ours, otp, facts
    finally:
        use_node_facts(None, None)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(params=[1, 2], ids=["seed1", "seed2"])
def seed(request):
    use_latin1_atoms(True)  # OTP 25's term_to_binary/1
    yield request.param
    use_latin1_atoms(False)


@pytest.mark.heavy          # a node of its own per seed; pure-Python arithmetic (one CPython)
def test_big_maps_match_otp(tmp_path, seed):
    terms, ours, otp, _ = _run_node(tmp_path, seed)
    assert len(otp) == len(terms)
    keys = 0
    for (name, term), mine, theirs in zip(terms, ours, otp, strict=True):
        assert mine == theirs, name
        assert decode(mine) == norm(term), name
        keys += len(term)
    assert keys > 20000


def test_without_node_facts_the_term_is_still_right():
    # an atom's index is the node's: without it the pairs keep dict order, the map is equal
    rng = random.Random(5)
    big = _big_map(rng, gen_atom, 100)
    assert decode(encode(big)) == big
    assert encode(big) == _in_dict_order(big)
    ints = {k: k for k in range(100)}
    assert decode(encode(ints)) == ints
    assert encode(ints) != _in_dict_order(ints)  # hash order: integers need no node facts


def _in_dict_order(d):
    return b"\x83t" + struct.pack(">I", len(d)) + b"".join(encode(k)[1:] + encode(v)[1:]
                                                            for k, v in d.items())


class _Node:
    """What the encoder's learn sees of the node: the indices of the atoms it is asked for
    (the index of an atom's name in `table`, as a driver_mk_atom word), or a failure."""

    def __init__(self, table, fail=False):
        self.table, self.fail, self.asked = table, fail, []

    def ask(self, op, body=b""):
        from pybridge._errors import WorkerError
        from pybridge._wire import protocol as P
        assert op == P.DRV_MK_ATOM
        names, i = [], 0
        while i < len(body):
            names.append(body[i + 1:i + 1 + body[i]].decode("latin-1"))
            i += 1 + body[i]
        self.asked.append(names)
        if self.fail:
            raise WorkerError("the node did not answer a driver call in time")
        return 0, b"".join(struct.pack(">Q", (self.table.index(n) << 6) | 0xB) for n in names)


def _with_table(node, max_frame=1 << 20):
    from pybridge._runtime.atoms import AtomTable
    atoms = AtomTable(max_frame)
    use_node_facts(atoms.get, None)
    return atoms, lambda names: atoms.learn(node, names)


def test_learn_asks_once_per_term_and_only_for_big_maps_with_atoms():
    names = [f"k{i}" for i in range(40)]
    node = _Node(sorted(names) + ["undefined", "v"])
    atoms, learn = _with_table(node)
    try:
        big = {Atom(n): Atom("v") for n in names}
        nested = {"small": {Atom("a"): 1}, "ints": {i: i for i in range(40)}, "big": big}
        encode({Atom(n): 1 for n in names[:32]}, learn=learn)      # a small map: no hash
        encode({i: Atom("x") for i in range(40)}, learn=learn)     # no atom in the keys
        assert node.asked == []
        first = encode(nested, learn=learn)
        assert node.asked == [sorted(names)]      # the keys' atoms, not the values'
        assert encode(nested, learn=learn) == first
        assert node.asked == [sorted(names)]      # known now: no second request
        by_index = {n: node.table.index(n) for n in names}
        use_node_facts(by_index.get, None)
        assert encode(nested) == first            # the order the indices give
        use_node_facts(None, None)
        assert encode(nested) != first            # not the order of the dict
    finally:
        use_node_facts(None, None)


def test_one_request_for_all_the_big_maps_of_a_term():
    left, right = [f"l{i}" for i in range(33)], [f"r{i}" for i in range(33)]
    node = _Node(left + right)
    _, learn = _with_table(node)
    try:
        encode([{Atom(n): 1 for n in left}, {"in": {(Atom(n), 2): 1 for n in right}}], learn=learn)
        assert node.asked == [sorted(left + right)]
    finally:
        use_node_facts(None, None)


def test_a_reply_that_does_not_encode_asks_nothing():
    # the atoms of a reply that never goes out must not be made in the node
    names, others = [f"e{i}" for i in range(40)], [f"o{i}" for i in range(40)]
    node = _Node(names + others)
    _, learn = _with_table(node)
    try:
        with pytest.raises(EncodeError):
            encode([{Atom(n): 1 for n in names}, object()], learn=learn)
        encode({Atom("other"): 1, "big": {i: i for i in range(40)}}, learn=learn)
        assert node.asked == []
        encode({Atom(n): 1 for n in others}, learn=learn)
        assert node.asked == [sorted(others)]     # not the failed reply's atoms
    finally:
        use_node_facts(None, None)


def test_a_failed_request_keeps_dict_order_and_the_term():
    names = [f"f{i}" for i in range(40)]
    node = _Node(names, fail=True)
    atoms, learn = _with_table(node)
    try:
        big = {Atom(n): i for i, n in enumerate(names)}
        assert encode(big, learn=learn) == _in_dict_order(big)
        assert decode(encode(big, learn=learn)) == big
        assert len(node.asked) == 2               # asked again next time: nothing was learned
        assert atoms.index == {}
    finally:
        use_node_facts(None, None)


def test_names_driver_mk_atom_cannot_take_are_not_asked():
    names = [f"n{i}" for i in range(38)] + ["nul\0in", "кл", "é"]
    node = _Node(names)
    atoms, learn = _with_table(node)
    try:
        encode({Atom(n): 1 for n in names}, learn=learn)
        assert node.asked == [sorted(n for n in names if n not in ("nul\0in", "кл"))]
    finally:
        use_node_facts(None, None)


def test_requests_fit_in_a_frame():
    from pybridge._runtime.atoms import AtomTable
    names = ["a" * 200, "b" * 200, "c", "", "d" * 255]
    for max_frame in (64, 300, 600, 1 << 20):
        batches = AtomTable(max_frame).batches(names)
        room = max_frame - 6
        for b in batches:
            assert sum(1 + len(n) for n in b) <= room and 1 + 8 * len(b) <= room
        sent = [n for b in batches for n in b]
        assert sent == [n for n in names if 1 + len(n) <= room]
    assert len(AtomTable(1 << 20).batches(names)) == 1
