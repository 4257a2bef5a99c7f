"""pybridge new (its generated test passes against a real node), doctor, shell, and what
every command says and returns."""
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EBIN = ROOT / "_build/default/lib/pybridge/ebin"


def pybridge(*args, cwd=None, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "pybridge", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, input=input, timeout=120)


def test_new_makes_a_driver_whose_test_passes(tmp_path):
    r = pybridge("new", "shouter", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    made = tmp_path / "shouter"
    assert sorted(p.name for p in made.iterdir()) == ["README.md", "pytest.ini", "shouter.py",
                                                      "test_shouter.py"]
    assert 'pybridge:open("shouter:Shouter", [binary])' in (made / "README.md").read_text()
    t = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=made,
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYBRIDGE_EBIN=str(EBIN)))
    assert t.returncode == 0, t.stdout + t.stderr
    assert "1 passed" in t.stdout


def test_new_refuses_bad_names_and_existing_dirs(tmp_path):
    assert pybridge("new", "Bad-Name", "--dir", str(tmp_path)).returncode == 2
    assert pybridge("new", "twice", "--dir", str(tmp_path)).returncode == 0
    again = pybridge("new", "twice", "--dir", str(tmp_path))
    assert again.returncode == 1 and "exists already" in again.stderr


def test_doctor_finds_everything_here():
    r = pybridge("doctor", cwd=ROOT)
    assert r.returncode == 0, r.stdout
    for what in ["erl:", "erl_driver.h:", "rebar3:", "C compiler:", "pybridge.so:",
                 "pybridge_manager.so:", "Python env:"]:
        assert f"ok      {what}" in r.stdout


def test_doctor_says_what_is_missing_and_how_to_fix_it(tmp_path):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent), PYBRIDGE_EBIN=str(tmp_path))
    r = pybridge("doctor", cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert "MISSING erl: apt-get install erlang-nox" in r.stdout
    assert "MISSING rebar3: apt-get install rebar3" in r.stdout


def shell(*args, lines, cwd=ROOT):
    """pybridge shell ARGS fed LINES and q(); its output must show a clean exit."""
    r = pybridge("shell", *args, cwd=cwd, input="".join(f"{x}\n" for x in [*lines, "q()."]))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_shell_binds_port_to_an_open_port():
    out = shell("--path", "tests/drivers", "upper:Upper", lines=[
        'pybridge:control(Port, 1, <<"hi">>).',
        "pybridge:call(Port, 0, 42).",
        # an exception must not take the port with the shell's evaluator
        "pybridge:control(Port, 1, not_iodata).",
        'pybridge:command(Port, <<"abc">>), receive {Port, {data, D}} -> D end.'])
    assert "pybridge shell: Port is #Port<" in out
    assert f"served by upper:Upper; driver modules from {ROOT / 'tests/drivers'}" in out
    assert '"ih"' in out
    assert "{count,0}" in out
    assert "exception error: bad argument" in out
    assert '<<"ABC">>' in out


def test_shell_gets_the_port_exit_as_a_message():
    out = shell("--path", "tests/drivers", "failures:Failures", lines=[
        "pybridge:command(Port, <<\"atom gone\">>), receive {'EXIT', Port, R} -> {exit, R} end.",
        "erlang:port_info(Port) =:= undefined andalso port_is_gone."])
    assert "{exit,gone}" in out
    assert "port_is_gone" in out


def test_shell_shows_what_the_driver_prints():
    out = shell("--path", "tests/drivers", "noisy:Noisy",
                lines=['pybridge:control(Port, 1, <<"hey">>), timer:sleep(500).'])
    assert "pybridge: printed hey" in out


def test_shell_passes_the_start_args_and_defaults_to_the_current_directory():
    out = shell("compressor:Compressor", "1", cwd=ROOT / "examples",
                lines=["zlib:uncompress(pybridge:control(Port, 2, <<>>))."])
    assert "served by compressor:Compressor 1;" in out
    assert "<<>>" in out.split("Port is", 1)[1]


def test_shell_on_a_terminal():
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "pybridge", "shell", "--path",
                                  "tests/drivers", "upper:Upper"])
    os.write(master, b'pybridge:control(Port, 1, <<"tty">>).\rq().\r')
    out = b""
    while select.select([master], [], [], 60)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:     # EIO: the shell is gone
            break
        if not data:
            break
        out += data
    os.close(master)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, out
    assert b'"ytt"' in out


def test_shell_fails_when_the_driver_cannot_be_opened():
    r = pybridge("shell", "--path", "tests/drivers", "start_fails:StartFails", "no", cwd=ROOT,
                 input="q().\n")
    assert r.returncode == 1
    assert "cannot open start_fails:StartFails: builtins.ValueError: start refused: no" in r.stderr
    r = pybridge("shell", "--path", "tests/drivers", "nosuch:Thing", cwd=ROOT, input="q().\n")
    assert r.returncode == 1
    assert "No module named 'nosuch' in the configured python_path" in r.stderr
    assert pybridge("shell", "not a spec").returncode == 2
    r = pybridge("shell", "--ebin", str(ROOT), "upper:Upper")
    assert r.returncode == 1 and "no pybridge ebin found" in r.stderr


def test_every_command_explains_itself():
    top = pybridge("--help")
    assert top.returncode == 0
    for cmd in ["worker", "new", "doctor", "shell"]:
        assert cmd in top.stdout
        r = pybridge(cmd, "--help")
        assert r.returncode == 0 and f"Usage: python -m pybridge {cmd}" in r.stdout
    assert pybridge("nosuch").returncode == 2


def test_shell_completion_script():
    env = dict(os.environ, _PYBRIDGE_COMPLETE="bash_source")
    r = subprocess.run([str(Path(sys.executable).parent / "pybridge")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "complete -o nosort -F _pybridge_completion pybridge" in r.stdout


@pytest.mark.heavy
def test_bench_subset_runs_and_leaves_the_published_table_alone():
    latest = ROOT / "bench/results/latest.json"
    before = latest.read_bytes()
    r = subprocess.run([sys.executable, "-m", "pybridge", "bench", "--only", "S1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads((ROOT / "bench/results/partial.json").read_text())
    [s1] = got["scenarios"]
    assert s1["id"] == "S1"
    res = s1["results"]
    assert {"pybridge", "in_process", "in_process_normal", "floor", "spin_floor",
            "ceiling"} <= res.keys()
    assert all(v["median"] > 0 and v["p99"] >= v["median"] for v in res.values())
    # CPU per round trip: the node's for every variant, the worker's where there is one
    assert all(v["node_cpu_us"] > 0 for v in res.values())
    assert res["pybridge"]["worker_cpu_us"] > 0 and res["floor"]["worker_cpu_us"] > 0
    assert "worker_cpu_us" not in res["in_process"] and "worker_cpu_us" not in res["ceiling"]
    assert got["machine"]["CPU(s)"] == str(os.cpu_count())
    assert latest.read_bytes() == before


def test_bench_refuses_unknown_ids():
    r = subprocess.run([sys.executable, "-m", "pybridge", "bench", "--only", "S1;rm"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--only" in r.stderr
