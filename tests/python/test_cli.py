"""The pybridge command: version and the worker entry point."""
import subprocess
import sys

import pybridge


def run(*args):
    return subprocess.run([sys.executable, "-m", "pybridge", *args], capture_output=True,
                          text=True, timeout=60)


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"pybridge, version {pybridge.__version__}"


def test_worker_help_names_the_fd():
    r = run("worker", "--help")
    assert r.returncode == 0
    assert "--fd" in r.stdout and "--path" in r.stdout


def test_worker_without_a_node_fails_cleanly():
    # fd 3 is not a ctl socket here: the worker must exit non-zero, not hang
    r = run("worker", "--fd", "0")
    assert r.returncode != 0
