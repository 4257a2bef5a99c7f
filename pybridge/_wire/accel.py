"""Which implementation of the worker's per-frame hot path runs: the compiled one
(pybridge._wire._accel, built by `pip install`), or the pure-Python one it stands for when
the worker's environment has PYBRIDGE_PURE=1 (docs/DEPLOYMENT.md). Both behave alike:
tests/python/test_accel.py feeds them the same inputs, and `make test` runs the real-node
suites under each.
"""
from __future__ import annotations

import os

PURE = os.environ.get("PYBRIDGE_PURE", "") not in ("", "0")
