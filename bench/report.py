"""Turn bench/results/latest.json into latest.md, latest.png and docs/PERFORMANCE.md.

Every variant runs side by side in one run, so a noisy machine moves the baselines
together with pybridge; targets that compare them are ratios within that run. Every
figure written here comes from the JSON: nothing is typed in by hand.
"""
import json
import platform
import re
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "bench/results"


def med(r, scenario, variant, key=None):
    v = r[scenario]["results"][variant]
    return (v[key] if key else v)["median"]


def extra(r, scenario, variant, key):
    """A per-variant median beside the main figure (p99, node_cpu_us, worker_cpu_us)."""
    return r[scenario]["results"][variant][key]


def targets(r):
    """(scenario, target text, achieved text, score): score is achieved/target, >= 1 is met;
    a target of several parts scores its worst part."""
    out = []

    def add(sid, text, achieved, *scores):
        out.append((sid, text, achieved, min(scores)))

    py, ip = med(r, "S1", "pybridge"), med(r, "S1", "in_process")
    ipn = med(r, "S1", "in_process_normal")
    p99 = extra(r, "S1", "pybridge", "p99")
    spin, fl = med(r, "S1", "spin_floor"), med(r, "S1", "floor")
    add("S1", "p50 <= 3 us and <= 3 x in-process; p99 <= 20 us",
        f"p50 {py:.1f} us = {py / ip:.2f} x in-process ({ip:.2f} us, dirty scheduler), "
        f"{py / ipn:.1f} x in-process on a normal scheduler ({ipn:.2f} us); p99 {p99:.1f} us; "
        f"spin floor {spin:.2f} us, pipe floor {fl:.1f} us",
        3 / py, 3 * ip / py, 20 / p99)
    a, b = med(r, "S2", "pybridge"), med(r, "S2", "spawn_port")
    add("S2", ">= 1.2 x spawn port (issue 4)", f"{a:,.0f}/s = {a / b:.2f} x spawn port",
        a / b / 1.2)
    a, b = med(r, "S3", "pybridge"), med(r, "S3", "spawn_port")
    add("S3", ">= 1,000,000 msg/s and >= 1.25 x spawn port",
        f"{a:,.0f}/s = {a / b:.2f} x spawn port", a / 1e6, a / b / 1.25)
    a, ip = med(r, "S4", "pybridge"), med(r, "S4", "in_process")
    ipn = med(r, "S4", "in_process_normal")
    add("S4", ">= 250,000 calls/s and <= 3 x in-process per call",
        f"{a:,.0f}/s; per call {ip / a:.2f} x in-process ({ip:,.0f}/s, dirty scheduler), "
        f"{ipn / a:.1f} x on a normal scheduler ({ipn:,.0f}/s)", a / 250000, 3 * a / ip)
    a, ip = med(r, "S5", "pybridge"), med(r, "S5", "in_process")
    add("S5", ">= 1,000,000 terms/s", f"{a:,.0f}/s (in-process {ip:,.0f}/s)", a / 1e6)
    a = med(r, "S6", "pybridge")
    add("S6", ">= 10 GB/s", f"{a:.2f} GB/s", a / 10)
    o, k = med(r, "S7", "pybridge", "opens_per_s"), med(r, "S7", "pybridge", "kib_per_port")
    add("S7", ">= 5,000 opens/s and <= 32 KiB per port", f"{o:,.0f} opens/s, {k:.1f} KiB per port",
        o / 5000, 32 / max(k, 0.001))
    a = med(r, "S8", "pybridge")
    add("S8", ">= 1.7 x with 2 workers", f"{a:.2f} x", a / 1.7)
    a = med(r, "S9", "pybridge")
    add("S9", "max lateness <= 5 ms", f"{a:.2f} ms", 5 / max(a, 0.001))
    a = med(r, "S10", "pybridge")
    add("S10", ">= 8 GB/s, no intermediate bytes", f"{a:.2f} GB/s", a / 8)
    a, c = med(r, "S11", "pybridge", "speedup"), med(r, "S11", "pybridge_command", "speedup")
    w = med(r, "S11", "pybridge_raw_control", "speedup")
    add("S11", "aggregate >= 50 x one port's rate",
        f"{a:.1f} x with pybridge:control ({w:.1f} x with a raw port_control, {c:.1f} x with "
        "port_command)", a / 50)
    a, n = med(r, "idle", "pybridge", "worker_pct"), med(r, "idle", "pybridge", "node_pct")
    add("idle", "worker <= 1 % of a CPU", f"worker {a:.2f} %, node {n:.2f} %", 1 / max(a, 0.001))
    a, b = med(r, "P3", "3_nodes"), med(r, "P3", "1_nodes")
    add("P3", ">= 2.5 x with 3 nodes", f"{a:,.0f}/s = {a / b:.2f} x 1 node", a / b / 2.5)
    return out


def machine(data):
    m = data.get("machine", {})
    mem = next((ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), "0")
    cores = int(m.get("Core(s) per socket", "0")) * int(m.get("Socket(s)", "0"))
    virt = f", {m['Hypervisor vendor']} guest" if "Hypervisor vendor" in m else ""
    return (f"{m.get('Model name', '?')}, {m.get('CPU(s)', '?')} CPUs ({cores} cores, "
            f"{m.get('Thread(s) per core', '?')} thread per core){virt}, "
            f"{int(mem) // 1024 // 1024} GiB, {platform.platform()}, "
            f"Python {platform.python_version()}")


def share(score):
    """achieved/target of an unmet target, with two significant digits however small."""
    return f"{score:.2f}" if score >= 0.1 else f"{score:.2g}"


def num(x):
    return f"{x:,.2f}" if x is not None else ""


def table(data):
    r = {s["id"]: s for s in data["scenarios"]}
    load = data.get("load_average")
    busy = (f" Load average (1 min) {load[0]:.1f} at the start of the run, {load[1]:.1f} at its "
            f"end, on {data['machine'].get('CPU(s)', '?')} CPUs."
            if load else "")
    lines = [f"Machine: {machine(data)}; OTP {data['otp']}, {data['schedulers']} schedulers; "
             f"median of {data['rounds']} rounds.{busy} CPU columns: CPU time (user + system, "
             "/proc/PID/stat) per operation of the node and of the worker, in us.", "",
             "| id | scenario | variant | median | min | max | p99 | node CPU/op | worker CPU/op |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in data["scenarios"]:
        for variant, v in s["results"].items():
            rows = v.items() if "median" not in v else [(None, v)]
            for key, x in rows:
                name = f"{variant} {key}" if key else variant
                lines.append(f"| {s['id']} | {s['what']} | {name} | {x['median']:,.2f} "
                             f"| {x['min']:,.2f} | {x['max']:,.2f} | {num(x.get('p99'))} "
                             f"| {num(x.get('node_cpu_us'))} | {num(x.get('worker_cpu_us'))} |")
    lines += ["", "| id | target | achieved | met |", "|---|---|---|---|"]
    tg = targets(r)
    for sid, text, achieved, score in tg:
        met = "yes" if score >= 1 else f"no ({share(score)} of target)"
        lines.append(f"| {sid} | {text} | {achieved} | {met} |")
    return "\n".join(lines) + "\n", tg, r


def cpu_notes(r, schedulers):
    """Where the CPU goes, from the run's own figures."""
    def cpu(sid, v):
        x = r[sid]["results"][v]
        w = x.get("worker_cpu_us")
        worker = f" + {w:.2f} us worker" if w is not None else ""
        return f"{x['node_cpu_us']:.2f} us node{worker}"
    s1 = r["S1"]["results"]
    s11 = {v: x["speedup"]["median"] for v, x in r["S11"]["results"].items()}
    return f"""
## Where the CPU goes (this run)

- S1, per round trip: pybridge {cpu("S1", "pybridge")}; in-process {cpu("S1", "in_process")};
  spin floor {cpu("S1", "spin_floor")}; pipe floor {cpu("S1", "floor")}. A side that
  busy-polls spends CPU while it waits: compare each variant's CPU with its latency.
- S1's in-process baseline on a dirty scheduler takes {s1["in_process"]["median"]:.2f} us p50,
  on a normal one {s1["in_process_normal"]["median"]:.2f} us: the difference is the hand-over
  to a dirty scheduler thread and back, not Python.
- S3, per message: pybridge {cpu("S3", "pybridge")}; spawn port {cpu("S3", "spawn_port")}.
- S4, per call: pybridge {cpu("S4", "pybridge")}; in-process {cpu("S4", "in_process")};
  spawn port with erlang-py {cpu("S4", "spawn_port")}.
- S5, per term: pybridge {cpu("S5", "pybridge")}; in-process {cpu("S5", "in_process")}.
- S6, per MiB: pybridge {cpu("S6", "pybridge")}; with `zero_copy = True`
  (`pybridge_zero_copy`: outputv gets views of the ring, no copy in the worker)
  {med(r, "S6", "pybridge_zero_copy"):.2f} GB/s, {cpu("S6", "pybridge_zero_copy")}.
  S10, per 8 MiB array: {cpu("S10", "pybridge")}.
- Busy-polling: S1 with `spin_us` 0 (`pybridge_spin_0`) takes
  {s1["pybridge_spin_0"]["median"]:.1f} us p50 and {cpu("S1", "pybridge_spin_0")}, against
  {s1["pybridge"]["median"]:.1f} us and {cpu("S1", "pybridge")} with the default. When the
  cores are shared with other busy processes, a side that spins can hold the CPU its peer
  needs to answer.
- S11: with pybridge:control, 100 ports reach {s11["pybridge"]:.1f} x one port's rate on
  this node's {schedulers} schedulers; with a raw port_control
  {s11["pybridge_raw_control"]:.1f} x; with port_command, {s11["pybridge_command"]:.1f} x.
"""


NOTES = """
## How the paths get there

Where the time still goes, side by side with the worker's instruction counts and why each
target is or is not reachable with pipes on the benchmark machine: [PROFILE.md](PROFILE.md)
(written by hand, with perf).

- Each port talks to its worker over two pipes: a small write and its read cost about a
  third of a unix socket's here. Past half of the descriptor limit a port gets one
  socketpair instead (docs/PROTOCOL.md).
- While a control/call waits, and after the worker has served a frame, each side
  busy-polls for up to `spin_us` (50 us) before it sleeps: S1, S2 and S4 pay no wake-up on
  that side. `spin_us` 0 turns it off; the CPU it spends is the price.
- port_command data of 64 KiB or more, and any such body from the worker, travels in a
  per-port shared-memory ring; a body in an empty ring starts at its front, where the
  cache is warm (S6).
- A callback's output goes out as it is made (once 64 KiB is queued), so Erlang handles it
  while the callback still runs (S5).

## How the baselines are made

- **in_process**: bench/inproc_nif.c embeds the venv's CPython in the VM and calls the
  functions of bench/inproc.py, taking the GIL for each call, on a dirty CPU scheduler as
  erlang_python does (`in_process`) and, for comparison, on a normal scheduler
  (`in_process_normal`). S4 converts the term to Python objects and back (atom <-> str,
  integer, binary <-> bytes, tuple); S5's Python sends each 5-tuple with a C function that
  converts it to a term and `enif_send`s it to the caller. Targets compare with the dirty
  scheduler variant; the table shows the normal one too.
- **spin_floor**: bench/floor.c and a forked copy ping-pong 8 bytes through a shared page,
  both busy-polling; **floor**: the same program and a minimal Python loop over a pipe pair,
  each side sleeping in `read()`.
- **ceiling**: a C linked-in echo driver (bench/echo_drv.c); **spawn_port**: a
  `{spawn_executable, python}` port with `{packet, 4}` (bench/spawn_echo.py), raw or
  decoding and encoding each term with erlang-py.
- Each measured window lasts at least 0.5 s (CPU times from /proc count 10 ms ticks).
- S10 sends a NumPy array with `self.port.output(arr)` as it is; NumPy is the `bench` extra
  of pyproject.toml, which `make bench` installs into the venv.
- S11 drives 100 ports, each from a process of its own, for 1 s; `pybridge` with
  `pybridge:control` (the target), `pybridge_raw_control` with `erlang:port_control`,
  `pybridge_command` with `port_command` and the answer's message. A raw `port_control`
  holds the scheduler that calls it until the answer comes, so its ports' waits overlap at
  most as many at a time as the node has schedulers; `pybridge:control` waits past its
  spin as a message (docs/PROTOCOL.md, "Pending requests").
"""


# ---- a bar chart without plotting libraries: 3x5 glyphs and a raw PNG writer ----
GLYPHS = {"S": "011100010001110", "0": "111101101101111", "1": "010110010010111",
          "2": "111001111100111", "3": "111001111001111", "4": "101101111001001",
          "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
          "8": "111101111101111", "9": "111101111001111", ".": "000000000000010",
          "x": "000101010101000", "i": "010000010010010", "d": "001001111101111",
          "l": "010010010010010", "e": "111101111100111"}


def png(tg, path):
    w, h, pad, scale = 720, 320, 40, 3
    px = [[(255, 255, 255)] * w for _ in range(h)]

    def rect(x0, y0, x1, y1, c):
        for y in range(max(0, y0), min(h, y1)):
            for x in range(max(0, x0), min(w, x1)):
                px[y][x] = c

    def text(x, y, s):
        for i, ch in enumerate(s):
            g = GLYPHS.get(ch)
            if g:
                for k, bit in enumerate(g):
                    if bit == "1":
                        rect(x + i * 4 * scale + (k % 3) * scale, y + (k // 3) * scale,
                             x + i * 4 * scale + (k % 3 + 1) * scale, y + (k // 3 + 1) * scale,
                             (0, 0, 0))
    top = 2.0                                     # the chart shows achieved/target up to 2x
    base = h - pad
    unit = (h - 2 * pad) / top
    bw = (w - 2 * pad) // max(1, len(tg))
    for i, (sid, _, _, score) in enumerate(tg):
        x = pad + i * bw
        hgt = int(min(score, top) * unit)
        rect(x + 6, base - hgt, x + bw - 6, base, (46, 139, 87) if score >= 1 else (205, 92, 92))
        text(x + 4, base + 8, sid)
        label = f"{score:.2f}" if score < 1 else f"{score:.1f}" if score < 10 else f"{score:.0f}"
        text(x + 4, max(2, base - hgt - 20), label + "x")
    rect(pad, base - int(unit), w - pad, base - int(unit) + 2, (0, 0, 0))      # the target line
    raw = b"".join(b"\x00" + b"".join(struct.pack("BBB", *c) for c in row) for row in px)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


INSTRUCTIONS_BEFORE = """
## Worker instructions per message

`make bench` ends with `make bench-instructions` (bench/instructions.sh,
bench/pb_instructions.erl): the Python worker runs under callgrind and counts the CPU
instructions it executes per `port_control` round trip of 8 bytes, per message of a
pipelined echo (8 bytes, 1,000 in flight, the `Echo` driver's `outputv`), per `port_call`
of `{ok, 42, <<"hello">>}` (S4) and per 5-tuple sent with `output_term` (S5), with `spin_us` 0
so that no busy-polling is counted. The counts are deterministic, unlike wall-clock time on
a shared machine, and leave out the kernel (the system calls themselves). Both hot paths
of the worker run side by side: the compiled extension (`pybridge._wire._accel`: frame
scanning, small-frame send and write, the Poller's wait, a port's reading, flushing and
dispatch of its outputs, controls and calls, `output`/`outputv`/`output_term`, plain
terms' encoding and decoding) and the pure-Python classes it
stands for (`PYBRIDGE_PURE=1`). Skipped, with a message, without valgrind.

"""

INSTRUCTIONS_AFTER = """
(bench/results/instructions.txt.) Before the extension the worker spent 46.8k per control
and 16.5k per echoed message; its first round (frame scanning, small-frame send, the
Poller) 26.3k and 6.2k; the code before the isolation work (locks, watchdog bookkeeping)
spent 40.6k per control. Since the second round a port's per-frame work is compiled too
(`_accel_conn.c`, `_accel_port.c`, `_accel_etf.c`; before it: 48.5k per call, 24.7k per
term): what remains per control is mostly the loop's turn in Python and the user's
`control` ([PROFILE.md](PROFILE.md)).
"""


def instructions() -> str:
    """The section of bench/results/instructions.txt (make bench-instructions, which make
    bench runs first), or nothing without it."""
    path = RES / "instructions.txt"
    if not path.exists():
        return ""
    rows = []
    for line in path.read_text().splitlines()[2:]:
        m = re.match(r"(.*?)\s+(\d+)\s+(\d+)$", line)
        if m:
            rows.append(f"| {m[1].strip()} | {int(m[2]):,} | {int(m[3]):,} |")
    table = "\n".join(["| worker instructions per operation | compiled | pure Python |",
                        "|---|---|---|", *rows])
    return INSTRUCTIONS_BEFORE + table + "\n" + INSTRUCTIONS_AFTER


def main() -> None:
    data = json.loads((RES / "latest.json").read_text())
    md, tg, r = table(data)
    (RES / "latest.md").write_text(md)
    png(tg, RES / "latest.png")
    unmet = [f"{sid} ({share(score)} of target)" for sid, _, _, score in tg if score < 1]
    summary = (f"Met: {len(tg) - len(unmet)} of {len(tg)} targets. "
               + (f"Not met: {', '.join(unmet)}." if unmet else "All met."))
    (ROOT / "docs/PERFORMANCE.md").write_text(
        "# Performance\n\nWritten by `make bench` (bench/report.py) from its latest run; "
        "targets that compare\n"
        "with a baseline are ratios within that run. The chart shows each target's "
        "achieved/target (1 = met;\na target of several parts shows its worst part).\n\n"
        f"{summary}\n\n"
        "![latest](../bench/results/latest.png)\n\n"
        + md + cpu_notes(r, data["schedulers"]) + NOTES + instructions())
    print(md)
    print(summary)


if __name__ == "__main__":
    sys.exit(main())
