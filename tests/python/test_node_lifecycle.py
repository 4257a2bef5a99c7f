"""When the node goes, its workers go: halted or SIGKILLed, nothing is left behind."""
import os
import signal
import time

import pytest

# Prints the worker's OS pid, then waits for a line on stdin before halting.
NODE = """
application:load(pybridge),
application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
{ok, _} = application:ensure_all_started(pybridge),
P = pybridge:open("upper:Upper", [binary]),
{os_pid, W} = erlang:port_info(P, os_pid),
io:format("worker ~w~n", [W]),
io:get_line(""),
erlang:halt().
"""


def worker_pid(node):
    line = node.stdout.readline()
    assert line.startswith("worker "), line
    return int(line.split()[1])


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


@pytest.mark.parametrize("how", ["halt", "sigkill"])
def test_worker_exits_with_the_node(start_node, how):
    node = start_node(NODE)
    pid = worker_pid(node)
    assert alive(pid)
    t0 = time.monotonic()
    if how == "halt":
        node.stdin.write("\n")
        node.stdin.flush()
    else:
        os.kill(node.pid, signal.SIGKILL)
    node.wait(timeout=10)
    assert gone_within(pid, 1.0), (
        f"worker {pid} still alive {time.monotonic() - t0:.2f}s after {how}")
