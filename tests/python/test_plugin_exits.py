"""The pytest plugin (pybridge.testing) as a user's pytest run meets it, in a pytest of its
own against a real node: a port that exits abnormally fails its test with the exit reason
(at once, where the test waits on it), and a driver next to its test file is found when
pytest runs from a parent directory."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EBIN = ROOT / "_build/default/lib/pybridge/ebin"

DRIVER = '''
"""Dies on "die": first says so, then fails with the atom in the rest of the data."""
import pybridge


class Dies(pybridge.Driver):
    def output(self, data):
        if data.startswith(b"die "):
            self.port.output(b"dying")
            self.port.failure_atom(data[4:].decode())
        else:
            self.port.output(data.upper())

    def control(self, command, data):
        return b"alive"
'''

TESTS = '''
import pytest

from pybridge import Atom
from pybridge.testing import ErlangError, PortExited


def wait_until_gone(port):
    """Until the port is gone, as a test that does not look at its messages sees it."""
    for _ in range(1000):
        try:
            port.control(0)
        except ErlangError:
            return
    raise AssertionError("the port never went")


def test_waiting_on_a_port_that_exits(beam):
    port = beam.open("next_to_test:Dies")
    port.command(b"die boom_while_waiting")
    assert port.receive(timeout=5) == (Atom("data"), b"dying")
    port.receive(timeout=600)


def test_a_port_that_exits_unobserved(beam):
    port = beam.open("next_to_test:Dies")
    port.command(b"die boom_unobserved")
    wait_until_gone(port)


def test_an_expected_exit_is_the_tests_to_catch(beam):
    port = beam.open("next_to_test:Dies")
    port.command(b"die expected")
    with pytest.raises(PortExited) as e:
        while True:
            port.receive(timeout=600)
    assert e.value.reason == Atom("expected")


def test_a_closed_port_is_no_failure(beam):
    port = beam.open("next_to_test:Dies")
    port.command(b"hi")
    assert port.receive(timeout=5) == (Atom("data"), b"HI")
    port.close()


def test_the_next_test_does_not_inherit_an_exit(beam):
    port = beam.open("next_to_test:Dies")
    assert port.control(0) == list(b"alive")
'''


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                           *args], cwd=project, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYBRIDGE_EBIN=str(EBIN)))


def project(tmp_path: Path) -> Path:
    """A project whose driver sits next to its test, two directories down, with no
    pybridge_python_path configured."""
    here = tmp_path / "proj" / "tests" / "drivers"
    here.mkdir(parents=True)
    (tmp_path / "proj" / "pytest.ini").write_text("[pytest]\n")
    (here / "next_to_test.py").write_text(textwrap.dedent(DRIVER))
    (here / "test_next_to_test.py").write_text(textwrap.dedent(TESTS))
    return tmp_path / "proj"


def outcome(out: str, test: str) -> str:
    """PASSED or FAILED for one test in -rA's short summary."""
    lines = [ln for ln in out.splitlines() if ln.endswith(f"::{test}") or f"::{test} " in ln]
    assert lines, f"{test} not in the summary:\n{out}"
    return lines[-1].split()[0]


def test_exits_fail_their_tests_and_the_driver_next_to_the_test_is_found(tmp_path):
    proj = project(tmp_path)
    r = run_pytest(proj)
    out = r.stdout + r.stderr
    assert outcome(out, "test_waiting_on_a_port_that_exits") == "FAILED", out
    assert "boom_while_waiting" in out
    assert outcome(out, "test_a_port_that_exits_unobserved") == "FAILED", out
    assert "exited during the test" in out and "boom_unobserved" in out
    for ok in ["test_an_expected_exit_is_the_tests_to_catch", "test_a_closed_port_is_no_failure",
               "test_the_next_test_does_not_inherit_an_exit"]:
        assert outcome(out, ok) == "PASSED", out
    assert r.returncode == 1, out


def test_from_the_test_files_own_directory_too(tmp_path):
    proj = project(tmp_path)
    r = run_pytest(proj / "tests" / "drivers", "-k", "closed or inherit")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout
