"""Which implementation of the worker's per-frame hot path runs: the compiled one
(pybridge._wire._accel, built by `pip install`), or the pure-Python one it stands for when
the worker's environment has PYBRIDGE_PURE=1 (docs/DEPLOYMENT.md). Both behave alike:
tests/python/test_accel.py feeds them the same inputs, and `make test` runs the real-node
suites under each.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from . import _accel

PURE = os.environ.get("PYBRIDGE_PURE", "") not in ("", "0")
# the lock of what the compiled code takes without a Python call (runner.Busy's)
new_lock: Callable[[], Any] = threading.Lock if PURE else _accel.Lock
