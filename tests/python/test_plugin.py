"""The pytest plugin (pybridge.testing) against a real node: the fixture users get."""
import pytest

from pybridge import Atom
from pybridge.testing import ErlangError


def test_command_control_call_receive(beam):
    port = beam.open("upper:Upper")
    assert port.command(b"hi") is True
    assert port.receive(timeout=2) == (Atom("data"), b"HI")
    assert port.control(1, b"hi") == list(b"ih")
    assert port.call(2, Atom("anything")) == (Atom("count"), 1)
    port.close()


def test_python_errors_arrive_as_erlang_errors(beam):
    port = beam.open("control_rules:ControlRules")
    with pytest.raises(ErlangError) as e:
        port.control(2, b"")
    assert e.value.reason[0] == Atom("error")
    assert e.value.reason[1][:2] == (Atom("python"), Atom("builtins.RuntimeError"))
    port.close()


def test_terms_and_timeouts(beam):
    port = beam.open("term_messages:TermMessages")
    port.control(4)
    assert beam.receive(timeout=2) == (Atom("my_tag"), (17, 4711))
    with pytest.raises(TimeoutError):
        port.receive(timeout=0.1)
    port.close()
