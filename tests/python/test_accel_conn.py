"""The compiled port (pybridge._runtime.cconn.CConn over _accel.ConnCore, and the handle
_api.cport.CPort over _accel.PortCore) against the pure-Python Conn and Port, on the same
frames: a real Worker object (its loop not run: the test is its loop thread) serves one
port over two pipes, the test writes the driver's frames and reads what the worker answers.
Both must write the same bytes and log the same errors: control's results of every kind,
its exceptions (BaseExceptions too), output's, malformed and huge frames, every output
shape, threads sending, port-level locking. The watchdog on the compiled path: against a
real node."""
import os
import socket
import time
from pathlib import Path

import pytest

from pybridge._api.cport import CPort
from pybridge._api.driver import Port
from pybridge._decode import decode
from pybridge._encode import encode, use_latin1_atoms
from pybridge._runtime.cconn import CConn
from pybridge._runtime.conn import Conn
from pybridge._runtime.handlers import HANDLERS
from pybridge._runtime.worker import Worker
from pybridge._types import Atom
from pybridge._wire import _accel
from pybridge._wire import protocol as P

DRIVERS = str(Path(__file__).resolve().parents[1] / "drivers")
CLASSES = [Conn, CConn]


def frames(data):
    out, off = [], 0
    while off < len(data):
        n, op, fl, rid = P.HEADER.unpack_from(data, off)
        out.append((op, fl, rid, bytes(data[off + P.HDR_LEN:off + 4 + n])))
        off += 4 + n
    assert off == len(data)
    return out


def same_error(frame):
    """A DRV_ERROR's {python, Class, Message, Traceback} without the traceback: the pure path's
    names the handler frames that called the callback, the compiled one's starts at it."""
    op, fl, rid, body = frame
    if op != P.DRV_ERROR:
        return frame
    term = decode(body)
    if isinstance(term, tuple) and term[0] == Atom("python"):
        term = term[:3]
    return (op, fl, rid, term)


class Served:
    """One port of one Conn class, opened with spec, served by a real Worker object."""

    def __init__(self, cls, spec):
        self.ctl, self.node_ctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.worker = Worker(self.ctl.detach(), [DRIVERS])
        rfd, self.to_w = os.pipe()
        self.from_r, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        os.set_blocking(self.from_r, False)
        self.conn = cls(self.worker, rfd, wfd, HANDLERS, 1)
        self.worker.conns.add(self.conn)
        os.write(self.to_w, P.frame(P.PY_OPEN, P.U64.pack(1) * 3 + spec.encode(), rid=1))
        self.conn.on_readable()
        opened = self.collect(1)        # port-level locking: from the port's thread
        assert opened[0][:3] == (P.DRV_REPLY, 0, 1), opened

    def send(self, data):
        """The driver's frames in, the loop's turn, the worker's frames out."""
        os.write(self.to_w, data)
        self.conn.on_readable()
        return frames(self.read())

    def read(self):
        out = b""
        while True:
            try:
                chunk = os.read(self.from_r, 1 << 20)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def collect(self, want, timeout=10.0):
        """Loop turns (flush) until `want` frames came (threads send meanwhile)."""
        got, end = [], time.monotonic() + timeout
        while len(got) < want and time.monotonic() < end:
            self.worker.jobs.finished()
            self.conn.flush()
            got += frames(self.read())
            time.sleep(0.001)
        return got

    def close(self):
        if not self.conn.closed:
            self.conn.close()
        end = time.monotonic() + 5
        while not self.conn.closed and time.monotonic() < end:
            self.worker.jobs.finished()     # port-level: its stop runs on its thread, then here
            time.sleep(0.001)
        assert self.conn.closed
        for fd in (self.to_w, self.from_r):
            os.close(fd)
        self.worker.jobs.close()
        self.node_ctl.close()
        self.worker.ctl.close()


@pytest.fixture
def served():
    made = []

    def make(cls, spec):
        made.append(Served(cls, spec))
        return made[-1]
    yield make
    for s in made:
        s.close()


def both(served, spec, data, caplog, norm=lambda f: f):
    """data through a port of each class: [(frames, log messages, closed)] for each."""
    out = []
    for cls in CLASSES:
        caplog.clear()
        s = served(cls, spec)
        assert s.conn.port.__class__ is (CPort if cls is CConn else Port)
        got = [norm(f) for f in s.send(data)]
        out.append((got, [r.getMessage() for r in caplog.records if r.name == "pybridge"],
                    s.conn.closed))
    return out


def controls(*cmds, fl=0):
    return b"".join(P.frame(P.PY_CONTROL, P.U32.pack(c) + d, fl=fl, rid=10 + i)
                    for i, (c, d) in enumerate(cmds))


def test_control_results_and_exceptions_alike(served, caplog):
    # control_rules: 0 None, 1 BadArg, 2 RuntimeError, 3 binary flag, 4 large, 5 list mode
    data = controls((0, b"x"), (1, b""), (2, b""), (3, b"abc"), (4, b"1024"), (4, b"256"),
                    (5, b""), (7, b""), (7, b"y" * 505))
    got = both(served, "control_rules:ControlRules", data, caplog, same_error)
    assert got[0] == got[1]
    frames_, logs, closed = got[0]
    assert [f[:3] for f in frames_] == [
        (P.DRV_REPLY, P.FL_NONE, 10), (P.DRV_ERROR, 0, 11), (P.DRV_ERROR, 0, 12),
        (P.DRV_SET_CONTROL_FLAGS, 0, 0), (P.DRV_REPLY, 0, 13), (P.DRV_REPLY, 0, 14),
        (P.DRV_REPLY, 0, 15), (P.DRV_SET_CONTROL_FLAGS, 0, 0), (P.DRV_REPLY, 0, 16),
        (P.DRV_REPLY, 0, 17), (P.DRV_REPLY, 0, 18)]
    assert frames_[1][3] == Atom("badarg") and frames_[2][3][2] == b"control broke"
    for cls in CLASSES:         # the traceback names the callback's own line on both paths
        tb = decode(served(cls, "control_rules:ControlRules").send(controls((2, b"")))[0][3])[3]
        assert b'control_rules.py", line 14, in control' in tb
    assert len(frames_[5][3]) == 1024 and frames_[-1][3] == b"y" * 505
    assert logs == ["RuntimeError in control_rules:ControlRules.control: control broke"]
    assert not closed


@pytest.mark.parametrize("what", [b"exit", b"interrupt", b"bare", b"timeout"])
def test_base_exceptions_in_control_and_output_alike(served, caplog, what):
    data = (controls((0, what), (0, b"fine"))
            + P.frame(P.PY_OUTPUT, P.U32.pack(len(what)) + what)
            + P.frame(P.PY_OUTPUT, P.U32.pack(2) + b"ok"))
    got = both(served, "raises_base_exceptions:DriverLevel", data, caplog, same_error)
    assert got[0] == got[1]
    frames_, logs, _ = got[0]
    assert [f[:3] for f in frames_] == [(P.DRV_ERROR, 0, 10), (P.DRV_REPLY, 0, 11),
                                        (P.DRV_OUTPUT, 0, 0)]
    assert frames_[2][3] == b"ok" and len(logs) == 2


def test_malformed_controls_and_outputs_alike(served, caplog):
    wrapped_garbage = P.frame(P.PY_CONTROL, b"\0\0\0\0\x83garbage", fl=P.FL_WRAPPED, rid=3)
    data = (P.frame(P.PY_CONTROL, b"\0\0", rid=1) + P.frame(P.PY_CONTROL, b"", rid=2)
            + wrapped_garbage
            + P.frame(P.PY_OUTPUT, b"\0\0\0\x09short")        # a piece longer than the body
            + P.frame(P.PY_OUTPUT, b"")                       # no piece at all
            + P.frame(P.PY_OUTPUT, P.U32.pack(1) + b"a" + P.U32.pack(2) + b"bc")
            + controls((0, b"after")))
    got = both(served, "raising_output:RaisingOutput", data, caplog, same_error)
    assert got[0] == got[1]
    assert [f[:3] for f in got[0][0]] == [(P.DRV_ERROR, 0, 1), (P.DRV_ERROR, 0, 2),
                                          (P.DRV_ERROR, 0, 3), (P.DRV_OUTPUT, 0, 0),
                                          (P.DRV_OUTPUT, 0, 0), (P.DRV_OUTPUT, 0, 0),
                                          (P.DRV_ERROR, 0, 10)]
    assert [f[3] for f in got[0][0][3:6]] == [b"short", b"", b"abc"]


@pytest.mark.parametrize("length", [0, 5, P.DEFAULT_MAX_FRAME + 1, 0xFFFFFFFF])
def test_a_bad_frame_length_closes_the_port_alike(served, caplog, length):
    # the frames before it are handled, their replies not sent: the C side sees EOF
    data = controls((0, b"before")) + P.U32.pack(length) + bytes(6) + controls((0, b"lost"))
    got = both(served, "control_rules:ControlRules", data, caplog)
    assert got[0] == got[1]
    assert got[0][0] == []
    assert got[0][1] == [f"pybridge port control_rules:ControlRules: bad frame length "
                         f"{length}; closing it"]
    assert got[0][2] is True


def test_missing_callbacks_alike(served, caplog):
    data = controls((0, b"x")) + P.frame(P.PY_OUTPUT, P.U32.pack(1) + b"z")
    got = both(served, "no_callbacks:NoCallbacks", data, caplog, same_error)
    assert got[0] == got[1]
    assert got[0][0] == [(P.DRV_ERROR, 0, 10, Atom("badarg"))]
    assert got[0][1] == ["no_callbacks:NoCallbacks has neither output nor outputv: 1 bytes "
                         "from Erlang ignored"]


@pytest.mark.parametrize("size", [0, 1, 8, 503, 504, 511, 512, 600])
def test_every_output_shape_sends_the_same_bytes(served, caplog, size):
    payload = bytes(range(256)) * 3
    d = payload[:size]
    data = (controls(*[(n, d) for n in range(16)])     # the driver's 16 SHAPES
            + P.frame(P.PY_OUTPUT, P.U32.pack(size) + d))
    got = both(served, "sends_each_output_shape:SendsEachOutputShape", data, caplog,
               same_error)
    assert got[0] == got[1]
    errors = [f for f in got[0][0] if f[0] == P.DRV_ERROR]
    assert len(errors) == 2 and len(got[0][1]) == 2      # output("text") and output()
    sent = [f for f in got[0][0] if f[0] in (P.DRV_OUTPUT, P.DRV_OUTPUTV)]
    assert sent[0] == (P.DRV_OUTPUT, 0, 0, d)
    assert sent[3] == (P.DRV_OUTPUTV, 0, 0, P.U32.pack(0) + P.U32.pack(size) + d)
    assert sent[-2:] == [(P.DRV_OUTPUT, 0, 0, d), sent[3]]


@pytest.mark.parametrize("level", ["DriverLevel", "PortLevel"])
def test_threads_sending_while_the_loop_serves(served, caplog, level):
    # threads the driver starts send through the compiled handle while the loop thread
    # reads and answers (driver-level), or while the port's own thread does (port-level)
    k, n = 4, 300
    out = []
    for cls in CLASSES:
        s = served(cls, f"outputs_from_threads:{level}")
        os.write(s.to_w, controls((1, b"%d %d" % (k, n))) + controls((2, b"")))
        s.conn.on_readable()
        got = s.collect(k * n + 2)
        replies = [f for f in got if f[0] == P.DRV_REPLY]
        seen = {t: [] for t in range(k)}
        for f in got:
            if f[0] == P.DRV_OUTPUT:
                t, i = f[3].split(b":")
                seen[int(t)].append(int(i))
        out.append(([f[2:] for f in replies], seen))
    assert out[0] == out[1]
    assert out[0][0] == [(10, b"ok"), (10, b"ok")]
    assert all(out[0][1][t] == list(range(n)) for t in range(k))


PLAIN = [0, 255, 256, -1, -2 ** 31, 2 ** 31 - 1, 0.0, -0.0, 1e308, 5e-324, b"", b"x" * 70000,
         "", "héllo wörld", "\u2603", Atom("ok"), Atom("ünïcode"), Atom("a" * 255), None, True,
         False, [], (), (1,), tuple(range(255)), tuple(range(256)), tuple(range(300)),
         (Atom("ok"), 42, b"hello", 3.5, Atom("done")), ((((1, 2), 3), 4), 5)]
NOT_PLAIN = [2 ** 31, -2 ** 31 - 1, 2 ** 100, [1], [Atom("a")], {1: 2}, bytearray(b"x"),
             memoryview(b"x"), float("inf"), float("nan"), "\ud800", Atom("never_cached_atom_x"),
             (1, [2]), (1, {}), object()]


@pytest.fixture(params=[False, True])
def latin1(request):
    """Atoms written as OTP 25 (ATOM_EXT when Latin-1) or as OTP 26 (UTF-8) writes them."""
    use_latin1_atoms(request.param)
    yield request.param
    use_latin1_atoms(False)


def test_the_compiled_encoder_writes_what_encode_writes(latin1):
    for t in PLAIN:
        for none in ("undefined", "nil"):
            want = encode(t, none)          # caches its atoms, as the worker's sends do
            assert _accel.encode_plain(t, none) == want, (t, none)
    deep = (1,)
    for _ in range(70):                     # deeper than the compiled encoder goes
        deep = (deep,)
    for t in NOT_PLAIN + [deep]:
        assert _accel.encode_plain(t, "undefined") is None, t
    assert _accel.encode_plain(None, "an_atom_never_cached") is None


def test_the_compiled_decoder_reads_what_decode_reads(latin1):
    for t in PLAIN:
        for none in ("undefined", "nil"):
            etf = encode(t, none)
            want = decode(etf, none)        # fills decode's atom table, as calls do
            got = _accel.decode_plain(etf, none)       # a str comes back bytes: both
            if latin1 and t == Atom("ünïcode"):
                assert got is None          # ATOM_EXT of Latin-1 bytes: decode converts them
                continue
            assert got == want and type(got) is type(want), (t, none)
            for cut in range(1, len(etf)):      # every truncation: decode's error
                assert _accel.decode_plain(etf[:cut], none) is None
            assert _accel.decode_plain(etf + b"\0", none) is None    # trailing bytes
    for etf in [encode([1, 2]), encode({1: 2}), encode(2 ** 40), b"\x83d\x00\x02\xe9t",
                b"\x83w\x05neverseen_atom"[:8], b"\x83F\x7f\xf0" + bytes(6),
                b"\x83i\xff\xff\xff\xff", b"", b"\x84a\x01",
                b"\x83" + b"h\x01" * 70 + b"a\x01"]:
        assert _accel.decode_plain(etf, "undefined") is None, etf
    assert _accel.decode_plain(encode(1), "a_none_atom_without_a_table") is None


def test_output_term_and_call_alike(served, caplog):
    # every TERMS shape by output_term, then calls answering plain terms, terms that are
    # not, and malformed ETF
    data = controls(*[(n, b"") for n in range(6)])
    calls = [encode((Atom("ok"), 42, b"hello")), encode((Atom("term"), 1)),
             encode((Atom("term"), 2)), encode((Atom("term"), 3)), encode((Atom("term"), 4)),
             encode([1, 2, 3]), b"\x83garbage", b"\x83", b"", encode(None, "nil")]
    data += b"".join(P.frame(P.PY_CALL, P.U32.pack(7) + c, rid=50 + i)
                     for i, c in enumerate(calls))
    got = both(served, "sends_terms:SendsTerms", data, caplog, same_error)
    assert got[0] == got[1]
    frames_, logs, _ = got[0]
    terms = [f for f in frames_ if f[0] == P.DRV_OUTPUT_TERM]
    assert len(terms) == 4          # the lone surrogate and the NaN cannot be sent
    etf = encode((Atom("ok"), 42, b"hello", 3.5, Atom("done")))
    assert terms[0][3] == bytes((P.T_EXT,)) + P.U32.pack(len(etf)) + etf
    answers = [f for f in frames_ if f[2] >= 50]
    # {term, 4} is the lone surrogate: not encodable, an error like the malformed ETF
    assert [f[0] for f in answers] == ([P.DRV_REPLY] * 4 + [P.DRV_ERROR, P.DRV_REPLY]
                                       + [P.DRV_ERROR] * 3 + [P.DRV_REPLY])
    assert answers[0][3] == calls[0] and answers[5][3] == calls[5]
    assert decode(answers[3][3]) == Atom("fresh_atom_of_sends_terms")


def test_output_term_from_another_thread_alike(served):
    out = []
    for cls in CLASSES:
        s = served(cls, "sends_terms:SendsTerms")
        os.write(s.to_w, controls(*[(100 + n, b"") for n in range(4)]))
        s.conn.on_readable()
        got = s.collect(8)             # the routed sends come with the loop's later turns
        out.append(sorted(f for f in got if f[0] == P.DRV_OUTPUT_TERM))
    assert out[0] == out[1] and len(out[0]) == 4


@pytest.mark.parametrize("pure", ["", "1"])
def test_the_watchdog_on_both_paths(start_node, pure, monkeypatch):
    # a control past its port's timeout gets pybridge.Timeout raised in it (the deadline the
    # compiled dispatch sets), and one spinning past callback_limit ends the worker (its
    # ports exit worker_hung), on the compiled path as on the pure one
    monkeypatch.setenv("PYBRIDGE_PURE", pure)
    node = start_node("""
        process_flag(trap_exit, true),
        application:load(pybridge),
        application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
        {ok, _} = application:ensure_all_started(pybridge),
        T = pybridge:open("notices_timeout:DriverLevel", [binary, {timeout, 300}]),
        Late = case catch pybridge:control(T, 1, <<"2000">>) of
                   {'EXIT', {Reason, _}} -> Reason; Other -> Other end,
        timer:sleep(300),
        Saw = pybridge:control(T, 2, <<>>),
        P = pybridge:open("spins_in_control:DriverLevel", [binary]),
        "x" = erlang:port_control(P, 0, <<"x">>),
        catch erlang:port_control(P, 1, <<>>),
        receive {'EXIT', P, Why} -> io:format("~nRESULT ~w ~w ~w~n", [Late, Saw, Why])
        after 10000 -> io:format("~nRESULT no exit~n") end,
        erlang:halt().""")
    out, _ = node.communicate(timeout=60)
    result = [line for line in out.splitlines() if line.startswith("RESULT")]
    assert result == ["RESULT {pybridge,timeout} [121,101,115] {pybridge,worker_hung}"], out
