"""Callbacks as coroutines (async def): answers, per-port order, ports that do not wait
for each other, exceptions as for sync callbacks, self.port from coroutines and threads,
and closing a port whose coroutine is pending; each under driver-level and port-level
locking (tests/drivers/port_level.py)."""
import time

import pytest

from pybridge import Atom
from pybridge.testing import ErlangError

PYTHON = Atom("python")


@pytest.fixture(autouse=True, params=["driver-level", "port-level"])
def locking(request, beam, monkeypatch):
    """Every test again with the classes under port-level locking."""
    if request.param == "port-level":
        opened = beam.open

        def open_port_level(spec, *args, **kw):
            mod, cls = spec.split(":")
            return opened(f"port_level:{mod}__{cls}", *args, **kw)
        monkeypatch.setattr(beam, "open", open_port_level)


def test_start_output_control_call(beam):
    port = beam.open("async_def_callbacks:AsyncCallbacks", "p:")
    port.command(b"hi")
    assert port.receive(timeout=2) == (Atom("data"), b"p:HI")
    assert port.control(1, b"abc") == list(b"cba")
    tag, command, term, caller = port.call(7, [1, b"x"])
    assert (tag, command, term) == (Atom("called"), 7, [1, b"x"])
    assert type(caller).__name__ == "OtpErlangPid"
    port.close()


def outcome(fn, *args):
    """What Erlang got: the answer, or the error with its traceback left out."""
    try:
        return ("ok", fn(*args))
    except ErlangError as e:
        reason = e.reason[1]
        if isinstance(reason, tuple) and reason[:1] == (PYTHON,):
            assert b"Traceback" in reason[3]
            return ("error", reason[:3])
        return ("error", reason)


@pytest.mark.parametrize("command", range(6))
def test_control_outcomes_match_sync(beam, command):
    sync = beam.open("control_rules:ControlRules")
    coro = beam.open("async_def_callbacks:AsyncControlRules")
    data = b"512" if command == 4 else b"data"
    assert outcome(coro.control, command, data) == outcome(sync.control, command, data)
    sync.close()
    coro.close()


@pytest.mark.parametrize("command", range(4))
def test_call_outcomes_match_sync(beam, command):
    sync = beam.open("call_rules:CallRules")
    coro = beam.open("async_def_callbacks:AsyncCallRules")
    assert outcome(coro.call, command, b"t") == outcome(sync.call, command, b"t")
    sync.close()
    coro.close()


def test_exception_in_async_output_leaves_the_port_usable(beam):
    port = beam.open("async_def_callbacks:AsyncCallbacks", "p:")
    port.command(b"raise")
    port.command(b"after")
    assert port.receive(timeout=2) == (Atom("data"), b"p:AFTER")
    port.close()


def test_timer_set_in_a_coroutine_calls_an_async_timeout(beam):
    port = beam.open("async_def_callbacks:AsyncCallbacks")
    assert port.control(2, b"10") == []
    assert beam.receive(timeout=2) == (Atom("timeout"), 0)
    port.close()


@pytest.mark.parametrize("command, answer", [(3, []), (6, list(b"j"))])
def test_port_methods_from_an_async_job_thread(beam, command, answer):
    """3 starts the job and answers; 6 awaits the job's result (asyncio.wrap_future)."""
    port = beam.open("async_def_callbacks:AsyncCallbacks")
    assert port.control(command, b"j") == answer
    assert beam.receive(timeout=2) == (Atom("from_thread"), b"j", True, True)
    assert beam.receive(timeout=2) == (Atom("ready_async"), b"j")
    port.close()


def test_port_methods_from_a_coroutines_thread(beam):
    port = beam.open("async_def_callbacks:AsyncCallbacks")
    assert port.control(4, b"t") == list(b"t")
    assert beam.receive(timeout=0) == (Atom("from_thread"), b"t", True, True)
    port.close()


def test_per_port_order_under_random_awaits(beam):
    ports = {name: beam.open("async_def_ordering:Ordering") for name in "ab"}
    sent = {name: [] for name in ports}
    for i in range(40):
        for name, port in ports.items():
            n = (ord(name) << 8) + i
            if i % 10 == 3:
                assert port.control(n, b"") == []
                sent[name].append((Atom("control"), n))
            elif i % 10 == 7:
                assert port.call(n, i) == i
                sent[name].append((Atom("call"), n))
            else:
                port.command(b"%c%d" % (ord(name), i))
                sent[name].append((Atom("output"), b"%c%d" % (ord(name), i)))
    got = [beam.receive(timeout=2) for _ in range(sum(map(len, sent.values())))]
    for name in ports:
        mine = [m for m in got if (m[1][:1] == name.encode() if m[0] == Atom("output")
                                   else m[1] >> 8 == ord(name))]
        assert mine == sent[name]
        ports[name].close()


def test_a_waiting_port_does_not_hold_up_another(beam):
    slow = beam.open("async_def_ordering:Ordering")
    other = beam.open("async_def_ordering:Ordering")
    slow.command(b"sleep 500")
    assert other.control(1, b"x") == list(b"x")      # a coroutine of its own
    assert other.call(2, 0) == 0                     # and a sync callback
    got = [beam.receive(timeout=2) for _ in range(3)]
    assert got == [(Atom("control"), 1), (Atom("call"), 2), (Atom("output"), b"sleep 500")]
    slow.close()
    other.close()


def test_strict_mode_command_waits_for_the_coroutine(beam):
    port = beam.open("async_def_ordering:StrictOrdering")
    t0 = time.monotonic()
    port.command(b"sleep 100")
    assert time.monotonic() - t0 >= 0.1
    assert beam.receive(timeout=0) == (Atom("output"), b"sleep 100")
    port.close()


def test_control_stays_bounded_by_the_port_timeout(beam):
    port = beam.open("async_def_callbacks:AsyncCallbacks", timeout=200)
    with pytest.raises(ErlangError) as e:
        port.control(5, b"600")
    assert e.value.reason == (Atom("error"), (Atom("pybridge"), Atom("timeout")))
    time.sleep(0.6)                                  # its late answer is discarded
    assert port.control(1, b"ab") == list(b"ba")
    port.close()


def lines_once(path, last):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if lines[-1:] == [last]:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} never ended with {last!r}")


@pytest.mark.parametrize("cls, stop", [("CloseWhilePending", "stopped"),
                                       ("AsyncStop", "async stop")])
def test_close_cancels_the_pending_coroutine_then_stops(beam, tmp_path, cls, stop):
    notes = tmp_path / "notes"
    port = beam.open(f"async_def_close:{cls}", str(notes))
    port.command(b"x")
    lines_once(notes, "waiting")
    port.close()
    assert lines_once(notes, stop.split()[-1]) == ["waiting", "cancelled"] + stop.split()
    with pytest.raises(TimeoutError):
        port.receive(timeout=0.1)                    # nothing reached the closed port


def test_large_data_reaches_a_waiting_port(beam):
    """Large bodies travel through shared memory, set up while the port waits."""
    port = beam.open("async_def_ordering:Ordering")
    big = [b"%d" % i * 70_000 for i in range(3)]
    port.command(b"sleep 200")
    for data in big:
        port.command(data)
    got = [beam.receive(timeout=2) for _ in range(4)]
    assert got == [(Atom("output"), data) for data in [b"sleep 200", *big]]
    port.close()


def test_input_beyond_the_limit_waits_in_erlang(beam):
    """Over 8 MiB waiting for a coroutine: the worker stops reading the port (it turns busy
    in Erlang) and reads on when the coroutine has ended; nothing is lost or reordered."""
    port = beam.open("async_def_ordering:Ordering")
    big = [b"%02d" % i * (1 << 19) for i in range(24)]
    port.command(b"sleep 300")
    for data in big:
        port.command(data)
    got = [beam.receive(timeout=5) for _ in range(25)]
    assert [m[1] for m in got] == [b"sleep 300", *big]
    port.close()
