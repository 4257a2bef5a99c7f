"""pybridge new (its generated test passes against a real node) and pybridge doctor."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EBIN = ROOT / "_build/default/lib/pybridge/ebin"


def pybridge(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "pybridge", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


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
    for what in ["erl:", "erl_driver.h:", "rebar3:", "C compiler:", "pybridge.so:", "Python env:"]:
        assert f"ok      {what}" in r.stdout


def test_doctor_says_what_is_missing_and_how_to_fix_it(tmp_path):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent), PYBRIDGE_EBIN=str(tmp_path))
    r = pybridge("doctor", cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert "MISSING erl: apt-get install erlang-nox" in r.stdout
    assert "MISSING rebar3: apt-get install rebar3" in r.stdout
