"""The drivers of examples/ doing their real work on a real node, and their Erlang usage."""
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from pybridge import Atom
from pybridge.testing import ErlangError, find_ebin

ROOT = Path(__file__).resolve().parents[2]

STATS, QUEUE, FLUSH, FINISH = 0, 1, 1, 2
GET, PUT, DELETE = 1, 2, 3


def drain(port):
    """The {data, Bytes} messages the port has sent so far, joined."""
    out = []
    while True:
        try:
            tag, data = port.receive(timeout=0.1)
        except TimeoutError:
            return b"".join(out)
        assert tag == Atom("data")
        out.append(data)


def text(n):
    words = [b"port", b"driver", b"python", b"erlang", b"queue", b"busy", b"select", b"\n"]
    rnd = random.Random(n)
    return b" ".join(rnd.choice(words) for _ in range(n // 6))[:n]


# -- compressor: outputv, the ERTS queue, busy port, flush on close --

def test_compressor_streams_what_it_is_sent(beam):
    port = beam.open("compressor:Compressor", "6")
    data = text(300_000)
    for off in range(0, len(data), 8192):
        assert port.command(data[off:off + 8192]) is True
    synced = port.control(FLUSH)
    streamed = drain(port)
    # a sync point: everything sent so far decompresses from what came back
    assert zlib.decompressobj().decompress(streamed + synced) == data
    tail = port.control(FINISH)
    assert zlib.decompress(streamed + synced + tail) == data
    assert port.call(STATS, Atom("stats")) == {Atom("bytes_in"): len(data),
                                               Atom("bytes_out"): len(streamed + synced + tail)}
    with pytest.raises(ErlangError) as e:
        port.control(7)
    assert e.value.reason == (Atom("error"), Atom("badarg"))
    port.close()


def test_compressor_less_than_a_block_waits_in_the_driver_queue(beam):
    port = beam.open("compressor:Compressor", "6")
    port.command(b"x" * 1000)
    assert port.call(QUEUE, Atom("queue"))[Atom("queued")] == 1000
    assert drain(port) == b""
    tail = port.control(FINISH)
    assert zlib.decompress(drain(port) + tail) == b"x" * 1000
    assert port.call(QUEUE, Atom("queue"))[Atom("queued")] == 0
    port.close()


def test_compressor_makes_a_fast_producer_wait(beam):
    port = beam.open("compressor:Compressor", "9")
    # random bytes: zlib is slowest on them, so the queue grows past HIGH
    rnd = random.Random(7)
    chunks = [rnd.randbytes(256 << 10) for _ in range(128)]
    for c in chunks:
        port.command(c)
    q = port.call(QUEUE, Atom("queue"))
    assert q[Atom("busy_episodes")] >= 1
    # HIGH plus what was on its way when the port went busy (a few MiB), not all 32 MiB
    assert q[Atom("peak_queue")] < 16 << 20
    tail = port.control(FINISH)
    assert zlib.decompress(drain(port) + tail) == b"".join(chunks)
    port.close()


def test_compressor_to_a_file_completes_it_on_close(beam, tmp_path):
    out = tmp_path / "log.z"
    port = beam.open("compressor:Compressor", f"6 {out}")
    data = text(10_000)
    for off in range(0, len(data), 4000):
        port.command(data[off:off + 4000])
    # all of it is still in the port's queue: port_close makes ERTS call flush
    assert port.call(QUEUE, Atom("queue"))[Atom("queued")] == len(data)
    port.close()
    deadline = time.monotonic() + 5
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert zlib.decompress(out.read_bytes()) == data
    assert not (tmp_path / "log.z.part").exists()


# -- kv_store: control on bytes, call on terms, async bulk load --

def put(port, key, value):
    return port.control(PUT, struct.pack(">I", len(key)) + key + value)


def test_kv_store_control_and_call(beam):
    port = beam.open("kv_store:KvStore")
    assert put(port, b"erl", b"Joe") == b""
    assert port.control(GET, b"erl") == b"Joe"
    with pytest.raises(ErlangError) as e:
        port.control(GET, b"missing")
    assert e.value.reason[1][:2] == (Atom("python"), Atom("builtins.KeyError"))
    assert port.control(DELETE, b"erl") == b"\x01"
    assert port.control(DELETE, b"erl") == b"\x00"
    assert port.call(0, (Atom("put"), b"b", b"2")) == Atom("ok")
    assert port.call(0, (Atom("put"), b"a", b"1")) == Atom("ok")
    assert port.call(0, (Atom("get"), b"a")) == b"1"
    assert port.call(0, (Atom("get"), b"zz")) is None
    assert port.call(0, (Atom("range"), b"a", b"c")) == [(b"a", b"1"), (b"b", b"2")]
    assert port.call(0, Atom("count")) == 2
    with pytest.raises(ErlangError):
        port.call(0, (Atom("get"), 42))
    port.close()


def test_kv_store_loads_in_the_background(beam):
    port = beam.open("kv_store:KvStore")
    put(port, b"before", b"1")
    pairs = [(b"key%06d" % i, b"value %d" % i) for i in range(60_000)]
    ref = port.call(0, (Atom("load"), pairs))
    # the port answers while the job writes; batches commit whole
    assert port.control(GET, b"before") == b"1"
    assert (port.call(0, Atom("count")) - 1) % 5000 == 0
    assert port.receive(timeout=30) == (Atom("loaded"), ref, len(pairs))
    assert port.call(0, Atom("count")) == len(pairs) + 1
    assert port.control(GET, b"key012345") == b"value 12345"
    port.close()


def test_kv_store_keeps_its_file(beam, tmp_path):
    db = tmp_path / "kv.sqlite3"
    port = beam.open("kv_store:KvStore", str(db))
    put(port, b"k", b"kept")
    port.close()
    again = beam.open("kv_store:KvStore", str(db))
    assert again.control(GET, b"k") == b"kept"
    again.close()


# -- line_server: sockets served through select --

def test_line_server_lines_in_replies_out(beam):
    port = beam.open("line_server:LineServer")
    tcp = port.call(0, Atom("info"))[Atom("port")]
    client = socket.create_connection(("127.0.0.1", tcp), timeout=10)
    tag, cid = port.receive()
    assert tag == Atom("connected")
    client.sendall(b"first\nsecond\r\npart")
    assert port.receive() == (Atom("line"), cid, b"first")
    assert port.receive() == (Atom("line"), cid, b"second")
    client.sendall(b"ial\n")
    assert port.receive() == (Atom("line"), cid, b"partial")
    assert port.call(0, Atom("info"))[Atom("clients")] == [cid]

    # more than the socket takes at once: the rest goes out on ready_output
    big = os.urandom(8 << 20)
    port.command(struct.pack(">I", cid) + big)
    assert port.control(1, struct.pack(">I", cid)) == b"\x01"
    got = bytearray()
    while True:
        piece = client.recv(1 << 16)
        if not piece:
            break
        got += piece
        time.sleep(0.0005 if len(got) < (1 << 20) else 0)
    assert bytes(got) == big
    assert port.receive() == (Atom("closed"), cid)
    client.close()
    port.close()


def test_line_server_sees_a_client_leave(beam):
    port = beam.open("line_server:LineServer")
    tcp = port.call(0, Atom("info"))[Atom("port")]
    with socket.create_connection(("127.0.0.1", tcp), timeout=10) as client:
        tag, cid = port.receive()
        client.sendall(b"bye\n")
        assert port.receive() == (Atom("line"), cid, b"bye")
    assert port.receive() == (Atom("closed"), cid)
    assert port.call(0, Atom("info"))[Atom("clients")] == []
    port.close()


# -- each example's Erlang usage, and the worked example of docs/WRITING_DRIVERS.md --

def erl(request, tmp_path, code, cwd):
    """Runs Erlang expressions on a fresh node with the pybridge app's code; its output."""
    r = subprocess.run(["erl", "-noshell", "-pa", find_ebin(request.config), "-pa", str(tmp_path),
                        "-eval", code, "-s", "init", "stop"],
                       cwd=cwd, env=dict(os.environ, PYBRIDGE_PYTHON=sys.executable,
                                         ERL_CRASH_DUMP=str(tmp_path / "erl_crash.dump")),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.parametrize("module", ["demo", "kv_store_demo", "line_server_demo"])
def test_erlang_usage_runs(module, request, tmp_path):
    subprocess.run(["erlc", "-o", str(tmp_path), str(ROOT / "examples" / f"{module}.erl")],
                   check=True, timeout=60)
    assert "demo OK" in erl(request, tmp_path, f"{module}:main()", ROOT)


def test_the_guide_s_worked_example_runs(request, tmp_path):
    guide = (ROOT / "docs/WRITING_DRIVERS.md").read_text()
    python = re.search(r"```python\n(# wordcount\.py\n.*?)```", guide, re.S).group(1)
    erlang = re.search(r"From Erlang, .*?```erlang\n(.*?)```", guide, re.S).group(1)
    (tmp_path / "wordcount.py").write_text(python)
    erl(request, tmp_path, erlang, tmp_path)


def test_the_erlport_migration_example_runs(request, tmp_path):
    """docs/MIGRATING_FROM_ERLPORT.md's ported example, as the page shows it."""
    guide = (ROOT / "docs/MIGRATING_FROM_ERLPORT.md").read_text()
    python = re.search(r"```python\n(# textstats\.py\n.*?)```", guide, re.S).group(1)
    erlang = re.search(r"renames `python` to `pybridge_python`:\n\n```erlang\n(.*?)```",
                       guide, re.S).group(1)
    (tmp_path / "textstats.py").write_text(python)
    start = "{ok, _} = application:ensure_all_started(pybridge), "
    assert "ported OK" in erl(request, tmp_path, start + erlang, tmp_path)
