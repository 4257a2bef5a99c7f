"""Shared fixtures: a real Erlang node with the pybridge application started."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EBIN = ROOT / "_build/default/lib/pybridge/ebin"


def node_env():
    return dict(os.environ, PYBRIDGE_PYTHON=sys.executable)


@pytest.fixture
def start_node():
    """start_node(eval) -> Popen of `erl -noshell` running Erlang code `eval`; killed at
    teardown."""
    if not (EBIN / "pybridge.app").exists():
        pytest.fail(f"{EBIN} is missing: run `make build` (make test does) first")
    procs = []

    def start(code: str) -> subprocess.Popen:
        p = subprocess.Popen(["erl", "-noshell", "-pa", str(EBIN), "-eval", code],
                             cwd=ROOT, env=node_env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
