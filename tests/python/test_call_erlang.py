"""Port.call_erlang seen from Python (tests/drivers/calls_erlang.py): Python values cross to
Erlang and back under the term mapping, an Erlang exception is a pybridge.ErlangError with
its class, reason and stacktrace, and every callback, thread and coroutine can call. The
EUnit suite pybridge_erl_call_tests covers the rest (timeouts, blocking calls, size, leaks)."""
import pytest

from pybridge import Atom

OK = Atom("ok")


def test_python_values_cross_both_ways(beam):
    port = beam.open("calls_erlang:CallsErlang")
    values = [1, -2, 2**100, 2.5, b"bin", "text", None, True, False, Atom("a"), [1, [2]],
              (1, (2,)), {"k": [1], 2: None}, []]
    assert port.call(1, (Atom("erlang"), Atom("list_to_tuple"), [values])) == OK
    port.command(b"out")
    # str goes as a binary, None as undefined and comes back as None
    want = (1, -2, 2**100, 2.5, b"bin", b"text", None, True, False, Atom("a"), [1, [2]],
            (1, (2,)), {b"k": [1], 2: None}, [])
    assert beam.receive(timeout=10) == (Atom("out"), (OK, want))
    port.close()


@pytest.mark.parametrize("cls, mfa, reason, top", [
    ("error", ("lists", "nth", [5, [1]]), Atom("function_clause"), (Atom("lists"), Atom("nth"))),
    ("exit", ("erlang", "exit", [(Atom("shutdown"), 1)]), (Atom("shutdown"), 1), None),
    ("throw", ("erlang", "throw", [[1, 2]]), [1, 2], None),
])
def test_an_erlang_exception_is_an_erlang_error(beam, cls, mfa, reason, top):
    port = beam.open("calls_erlang:CallsErlang")
    assert port.call(1, (Atom(mfa[0]), Atom(mfa[1]), mfa[2])) == OK
    port.command(b"err")
    tag, name, got_cls, got_reason, stack, is_pybridge_error = beam.receive(timeout=10)
    # e.cls is a str: it crosses back as a binary
    assert (tag, name, got_cls, got_reason) == (Atom("err"), b"ErlangError", cls.encode(),
                                                reason)
    assert is_pybridge_error is True
    # frames are {Module, Function, Arity | Args, Location}, the user's only
    assert all(isinstance(f, tuple) and len(f) == 4 for f in stack)
    assert Atom("pybridge_erl_call") not in [f[0] for f in stack]
    if top is not None:
        assert stack[0][:2] == top
    port.close()


def test_undefined_function(beam):
    port = beam.open("calls_erlang:CallsErlang")
    assert port.call(1, (Atom("no_such_module"), Atom("f"), [])) == OK
    port.command(b"err")
    assert beam.receive(timeout=10)[:4] == (Atom("err"), b"ErlangError", b"error",
                                                 Atom("undef"))
    port.close()


@pytest.mark.parametrize("how", ["out", "thread", "job", "timer"])
def test_every_callback_and_thread_can_call(beam, how):
    port = beam.open("calls_erlang:CallsErlang")
    assert port.call(1, (Atom("lists"), Atom("seq"), [1, 3])) == OK
    port.command(how.encode())
    assert beam.receive(timeout=10) == (Atom(how), (OK, [1, 2, 3]))
    port.close()


def test_a_coroutine_awaits_the_call(beam):
    port = beam.open("calls_erlang:AsyncCallsErlang")
    assert port.call(1, (Atom("lists"), Atom("seq"), [1, 3])) == OK
    port.command(b"coro")
    assert beam.receive(timeout=10) == (Atom("coro"), (OK, [1, 2, 3]))
    port.close()


def test_the_timeout_is_pybridge_timeout(beam):
    port = beam.open("calls_erlang:CallsErlang")
    assert port.call(1, (Atom("timer"), Atom("sleep"), [2000], 0.2)) == OK
    port.command(b"out")
    assert beam.receive(timeout=10) == (Atom("out"), Atom("timeout"))
    port.close()


@pytest.mark.parametrize("request_, error", [
    ((Atom("lists"), Atom("reverse"), 1), "TypeError"),
    ((1, Atom("reverse"), []), "TypeError"),
    ((Atom("lists"), Atom("reverse"), [], 0), "ValueError"),
    ((Atom("lists"), Atom("reverse"), [], True), "ValueError"),
])
def test_bad_arguments_raise_before_anything_is_sent(beam, request_, error):
    from pybridge.testing import ErlangError
    port = beam.open("calls_erlang:CallsErlang")
    with pytest.raises(ErlangError) as e:
        port.call(2, request_)
    assert e.value.reason[1][:2] == (Atom("python"), Atom(f"builtins.{error}"))
    port.close()
