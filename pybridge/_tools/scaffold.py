"""`pybridge new NAME`: a driver skeleton, its Erlang usage and a test that passes."""
from __future__ import annotations

from pathlib import Path

DRIVER = '''"""{cls}: a pybridge driver. Erlang usage is in README.md."""
import pybridge


class {cls}(pybridge.Driver):
    def start(self, command):
        # before open_port returns; command is the text after the spec
        self.seen = 0

    def output(self, data):
        # port_command / Port ! {{Pid, {{command, Data}}}}
        self.seen += 1
        self.port.output(data.upper())

    def control(self, command, data):
        # erlang:port_control/3: bytes back (a list, or a binary after
        # set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY))
        return data[::-1]

    def call(self, command, term):
        # erlang:port_call/3: a term back
        return (pybridge.Atom("seen"), self.seen)
'''

TEST = '''"""{cls} against a real Erlang node (the pybridge pytest plugin's beam fixture)."""
from pybridge import Atom


def test_{name}(beam):
    port = beam.open("{name}:{cls}")
    assert port.command(b"hello")
    assert port.receive(timeout=5) == (Atom("data"), b"HELLO")
    assert port.control(0, b"abc") == list(b"cba")
    assert port.call(0, Atom("x")) == (Atom("seen"), 1)
    port.close()
'''

README = '''# {name}

A port driver written in Python with pybridge.

```erlang
application:load(pybridge),
application:set_env(pybridge, python_path, ["{path}"]),
{{ok, _}} = application:ensure_all_started(pybridge),
Port = pybridge:open("{name}:{cls}", [binary]),
true = pybridge:command(Port, <<"hello">>),
receive {{Port, {{data, <<"HELLO">>}}}} -> ok end,
"cba" = pybridge:control(Port, 0, <<"abc">>),
{{seen, 1}} = pybridge:call(Port, 0, x),
true = pybridge:close(Port).
```

Test it against a real node: `python -m pytest` (the plugin finds the pybridge Erlang app
from `--pybridge-ebin` or `$PYBRIDGE_EBIN`).
'''


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def new(name: str, where: Path) -> Path:
    """Write NAME/ with NAME.py, test_NAME.py, pytest.ini and README.md; returns the dir."""
    target = where / name
    if target.exists():
        raise FileExistsError(f"{target} exists already")
    target.mkdir(parents=True)
    fields = {"name": name, "cls": camel(name), "path": str(target.resolve())}
    (target / f"{name}.py").write_text(DRIVER.format(**fields))
    (target / f"test_{name}.py").write_text(TEST.format(**fields))
    (target / "pytest.ini").write_text("[pytest]\npybridge_python_path = .\n")
    (target / "README.md").write_text(README.format(**fields))
    return target
