"""Numbers and the version that C, Erlang and Python share have one home: docs/PROTOCOL.md's
"Limits and defaults" table (the version: pyproject.toml). Every other place must agree."""
import re
from pathlib import Path

import pybridge
from pybridge._wire import protocol as P

ROOT = Path(__file__).resolve().parents[2]
SIDES = {"C": "c_src/pybridge_protocol.h", "Erlang": "erlang/include/pybridge_protocol.hrl",
         "Python": "pybridge/_wire/protocol.py"}


def doc_limits():
    """name -> (value, sides) from the table."""
    text = (ROOT / "docs/PROTOCOL.md").read_text()
    section = text[text.index("## Limits and defaults"):]
    section = section[:section.index("\n## ")]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d+) \| ([^|]+) \|", section, re.M)
    return {n: (int(v), {s.strip() for s in sides.split(",")}) for n, v, sides in rows}


def block(path):
    text = (ROOT / path).read_text()
    start = text.index("---- limits: keep equal to docs/PROTOCOL.md ----")
    return text[start:text.index("---- end of limits ----")]


def c_value(expr):
    m = re.fullmatch(r"\((\d+)u? << (\d+)\)|(\d+)u?", expr)
    return int(m[1]) << int(m[2]) if m[1] else int(m[3])


def side_limits(side):
    text = block(SIDES[side])
    if side == "C":
        return {n: c_value(v) for n, v in re.findall(r"#define ([A-Z_]+) (\(\d+u? << \d+\)|\d+u?)",
                                                       text)}
    if side == "Erlang":
        return {n: int(v) for n, v in re.findall(r"-define\(([A-Z_]+), (\d+)\)", text)}
    return {n: getattr(P, n) for n in re.findall(r"^([A-Z_]+) = ", text, re.M)}


def test_the_table_lists_the_shared_numbers():
    doc = doc_limits()
    assert {"DEFAULT_TIMEOUT_MS", "DEFAULT_MAX_FRAME", "MAX_SPIN_US", "SHM_MIN"} <= doc.keys()


def test_each_side_holds_exactly_its_rows_with_their_values():
    doc = doc_limits()
    for side in SIDES:
        want = {n: v for n, (v, sides) in doc.items() if side in sides}
        assert side_limits(side) == want, side


def test_app_env_defaults_are_the_table_s():
    app = (ROOT / "erlang/src/pybridge.app.src").read_text()
    env = dict(re.findall(r"\{(timeout|max_frame|spin_us|callback_limit), (\d+)\}", app))
    doc = doc_limits()
    assert int(env["timeout"]) == doc["DEFAULT_TIMEOUT_MS"][0]
    assert int(env["max_frame"]) == doc["DEFAULT_MAX_FRAME"][0]
    assert int(env["spin_us"]) == doc["DEFAULT_SPIN_US"][0]
    assert int(env["callback_limit"]) == doc["DEFAULT_CALLBACK_LIMIT_MS"][0]


def test_the_version_is_one_everywhere():
    want = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    app = re.search(r'\{vsn, "([^"]+)"\}', (ROOT / "erlang/src/pybridge.app.src").read_text())
    c = re.search(r'#define PB_DRIVER_VERSION "([^"]+)"',
                  (ROOT / "c_src/pybridge_protocol.h").read_text())
    assert pybridge.__version__ == app[1] == c[1] == want
