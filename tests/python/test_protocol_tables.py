"""docs/PROTOCOL.md is normative: the C, Erlang and Python opcode tables must equal it."""
import re
from pathlib import Path

import pybridge._wire.protocol as proto

ROOT = Path(__file__).resolve().parents[2]
NAME = r"(?:CTL|PY|DRV|FL|PB_CALL|MGR|T|FAIL|TIME|OPEN|CB)_[A-Z_0-9]+"


def doc_table():
    """Every `NAME` | value row of the tables in PROTOCOL.md, and the flags line."""
    text = (ROOT / "docs/PROTOCOL.md").read_text()
    rows = {}
    row = rf"^\| `({NAME})` \| (0x[0-9A-Fa-f]+|16#[0-9A-Fa-f]+|\d+) \|"
    for name, value in re.findall(row, text, re.M):
        rows[name] = int(value[3:], 16) if value.startswith("16#") else int(value, 0)
    flag = r"`((?:FL|FAIL|TIME|OPEN|CB)_[A-Z_]+)` = (0x[0-9A-Fa-f]+|\d+)"
    for name, value in re.findall(flag, text):
        rows[name] = int(value, 0)
    return rows


def between_markers(path):
    text = (ROOT / path).read_text()
    start = text.index("---- opcodes: keep equal to docs/PROTOCOL.md ----")
    return text[start:text.index("---- end of opcodes ----")]


def c_table():
    block = between_markers("c_src/pybridge_protocol.h")
    defines = re.findall(rf"#define ({NAME}) (0x[0-9A-Fa-f]+u?|\d+)", block)
    return {n: int(v.rstrip("u"), 0) for n, v in defines}


def erlang_table():
    block = between_markers("erlang/include/pybridge_protocol.hrl")
    return {n: int(v[3:], 16) if v.startswith("16#") else int(v)
            for n, v in re.findall(rf"-define\(({NAME}), (16#[0-9A-Fa-f]+|\d+)\)", block)}


def python_table():
    block = between_markers("pybridge/_wire/protocol.py")
    names = re.findall(rf"^({NAME}) = ", block, re.M)
    return {n: getattr(proto, n) for n in names}


def test_doc_table_is_complete():
    doc = doc_table()
    assert {"CTL_HELLO", "PY_OPEN", "DRV_REPLY", "FL_WRAPPED", "PB_CALL_CONTROL",
            "MGR_SPAWN"} <= doc.keys()
    assert len(doc) >= 20


def test_c_agrees_with_protocol_md():
    assert c_table() == doc_table()


def test_erlang_agrees_with_protocol_md():
    assert erlang_table() == doc_table()


def test_python_agrees_with_protocol_md():
    assert python_table() == doc_table()


def test_protocol_version_agrees():
    c = re.search(r"#define PB_PROTOCOL_VERSION (\d+)",
                  (ROOT / "c_src/pybridge_protocol.h").read_text())
    erl = re.search(r"-define\(PB_PROTOCOL_VERSION, (\d+)\)",
                    (ROOT / "erlang/include/pybridge_protocol.hrl").read_text())
    doc = re.search(r"Protocol version: \*\*(\d+)\*\*", (ROOT / "docs/PROTOCOL.md").read_text())
    assert int(c[1]) == int(erl[1]) == int(doc[1]) == proto.PROTOCOL_VERSION


def test_each_side_names_protocol_md_at_the_top():
    for path in ["c_src/pybridge_protocol.h", "erlang/include/pybridge_protocol.hrl",
                 "pybridge/_wire/protocol.py", "pybridge/_wire/reader.py",
                 "pybridge/_wire/writer.py", "pybridge/_wire/rings.py",
                 "pybridge/_wire/termprog.py", "pybridge/_runtime/channel.py",
                 "pybridge/_runtime/conn.py", "pybridge/_runtime/handlers.py",
                 "pybridge/_runtime/worker.py", "erlang/src/pybridge_ctl.erl",
                 "erlang/src/pybridge_manager.erl"]:
        head = (ROOT / path).read_text()[:800]
        assert "docs/PROTOCOL.md" in head, path


def test_each_c_file_that_implements_the_protocol_names_it():
    """The driver is split into files; each says which part of PROTOCOL.md it implements."""
    for path in sorted((ROOT / "c_src").glob("*.[ch]")):
        assert "docs/PROTOCOL.md" in path.read_text()[:800], path.name


def doc_worker_requests():
    """The worker -> C opcodes whose id column says 'request', answers excluded."""
    text = (ROOT / "docs/PROTOCOL.md").read_text()
    section = text[text.index("## Port channel opcodes: worker → C"):]
    section = section[:section.index("\n## ")]
    rows = re.findall(r"^\| `(DRV_[A-Z_0-9]+)` \| 0x[0-9A-F]+ \| ([^|]+) \|", section, re.M)
    table = {n for n, idcol in rows if idcol.strip() == "request"} - {"DRV_REPLY", "DRV_ERROR"}
    listed = set(re.findall(r"`(DRV_[A-Z_]+)`",
                            section[section.index("The worker's requests are exactly"):]
                            .split(". Each carries")[0].split(":", 1)[1]))
    return table, listed


def c_worker_requests():
    """DRV_* ops whose handler answers with PY_ANSWER (calls answer() in api_calls.c)."""
    api = (ROOT / "c_src/api_calls.c").read_text()
    bodies = re.split(r"^int (pb_op_[a-z_]+)\(", api, flags=re.M)
    answering = {bodies[i] for i in range(1, len(bodies), 2) if "answer(" in bodies[i + 1]}
    table = (ROOT / "c_src/frames.c").read_text()
    return {op for op, fn in re.findall(r"\[(DRV_[A-Z_0-9]+)\] = (\w+),", table)
            if fn in answering}


def python_worker_requests():
    """DRV_* ops the Python side sends with ask(), the call that waits for PY_ANSWER."""
    found = set()
    for path in (ROOT / "pybridge").rglob("*.py"):
        found |= set(re.findall(r"\bask\(P\.(DRV_[A-Z_0-9]+)", path.read_text()))
    return found


def test_worker_requests_agree():
    table, listed = doc_worker_requests()
    assert len(table) >= 7
    assert table == listed
    assert c_worker_requests() == table
    assert python_worker_requests() == table


def test_each_flag_names_the_opcodes_it_applies_to():
    text = (ROOT / "docs/PROTOCOL.md").read_text()
    line = re.search(r"^Flags: (.*)$", text, re.M)[1]
    flags = re.findall(r"`(FL_[A-Z]+)` = (0x[0-9A-F]+) \(on ([^)]+)\)", line)
    assert {f for f, _, _ in flags} == {n for n in doc_table() if n.startswith("FL_")}
    for name, _, on in flags:
        ops = re.findall(r"`((?:PY|DRV|CTL)_[A-Z_0-9]+)`", on)
        assert ops or on == "any frame", name
        assert set(ops) <= doc_table().keys(), name
