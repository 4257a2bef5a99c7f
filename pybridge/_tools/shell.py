"""`pybridge shell`: an Erlang shell with the pybridge application started and a port open.

The port is opened by a holder process during the boot, so that a driver that cannot be
opened ends the command with its error. Once the banner says the port is open, the shell
gets its first expression from here: it takes the port over from the holder (the shell's
evaluator becomes the owner) and binds it to ``Port``. The shell may have started before the
set-up ran, so it is the banner, not the prompt, that says when.
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import tty
from pathlib import Path
from types import FrameType

from .._encode import encode

SETUP = r"""
{Spec, Args, Paths} = binary_to_term(binary:decode_hex(<<"@TERM@">>)),
application:load(pybridge),
ok = application:set_env(pybridge, python_path, Paths),
case application:ensure_all_started(pybridge) of
    {ok, _} -> ok;
    {error, Why} ->
        io:format(standard_error, "pybridge shell: the pybridge application did not start: ~p~n",
                  [Why]),
        halt(1)
end,
Me = self(),
spawn(fun() ->
    try pybridge:open(Spec, Args, [binary]) of
        Port ->
            register(pybridge_shell, self()),
            Me ! {opened, Port},
            receive {take, Shell} -> ok end,
            erlang:port_connect(Port, Shell),
            unlink(Port),
            Forward = fun F() -> receive {Port, _} = M -> Shell ! M, F() after 0 -> ok end end,
            Forward(),
            Shell ! {pybridge_shell, Port}
    catch Class:Reason -> Me ! {failed, Class, Reason}
    end
end),
receive
    {opened, Port} ->
        io:format("pybridge shell: Port is ~p, served by ~ts~ts; driver modules from ~ts~n"
                  "  pybridge:command(Port, <<\"data\">>).  flush(). shows {Port, {data, ...}}~n"
                  "  pybridge:control(Port, Cmd, <<\"data\">>).  pybridge:call(Port, Cmd, Term).~n"
                  "  pybridge:info(Port).  pybridge:close(Port).  q(). quits~n"
                  "  the port's exit arrives as {'EXIT', Port, Reason}; the driver's logs and"
                  " prints show here~n",
                  [Port, Spec, [[" ", Args] || Args =/= <<>>], lists:join(" ", Paths)]);
    {failed, error, {python, Class, Message, Traceback}} ->
        io:format(standard_error, "pybridge shell: cannot open ~ts: ~ts: ~ts~n~ts",
                  [Spec, Class, Message, Traceback]),
        halt(1);
    {failed, Class, Reason} ->
        io:format(standard_error, "pybridge shell: cannot open ~ts: ~p:~p~n",
                  [Spec, Class, Reason]),
        halt(1)
end.
"""

# trap_exit: the port's exit (a driver failure, the node stopping) is a message, not the end
# of the shell's evaluator
TAKE = (b"process_flag(trap_exit, true), pybridge_shell ! {take, self()},"
        b" receive {pybridge_shell, Port} -> Port end.\n")
BANNER = b"pybridge shell: Port is"


def command(ebin: Path, spec: str, args: str, paths: list[str]) -> list[str]:
    term = (spec.encode(), args.encode(), [os.path.abspath(p).encode() for p in paths])
    # the exceptions a user makes must not kill the shell's evaluator: it owns the port
    return ["erl", "-pa", str(ebin), "-stdlib", "shell_catch_exception", "true",
            "-eval", SETUP.replace("@TERM@", encode(term).hex())]


def run(argv: list[str], env: dict[str, str]) -> int:
    """Run erl, relaying its terminal; its exit status."""
    if os.isatty(0) and os.isatty(1):
        return _in_pty(argv, env)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready = threading.Event()
    threading.Thread(target=_feed, args=(proc, ready), daemon=True).start()
    banner = _Banner()
    while data := os.read(proc.stdout.fileno(), 65536):
        if banner.seen_in(data):
            ready.set()
        _write_all(1, data)
    return proc.wait()


class _Banner:
    """Looks for BANNER in erl's output, however the reads cut it."""

    def __init__(self) -> None:
        self.seen, self.tail = False, b""

    def seen_in(self, data: bytes) -> bool:
        if not self.seen:
            joined = self.tail + data
            self.seen, self.tail = BANNER in joined, joined[-len(BANNER):]
        return self.seen


def _feed(proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
    """Our stdin to erl's, after TAKE."""
    assert proc.stdin is not None
    ready.wait()
    try:
        proc.stdin.write(TAKE)
        proc.stdin.flush()
        while data := os.read(0, 65536):
            proc.stdin.write(data)
            proc.stdin.flush()
        proc.stdin.close()
    except (BrokenPipeError, ValueError):   # erl is gone already
        pass


def _in_pty(argv: list[str], env: dict[str, str]) -> int:
    """erl on a terminal of its own (line editing, ^G), relayed to ours in raw mode. What is
    typed before the banner waits, so that TAKE comes first."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)

    def resize(_sig: int = 0, _frame: FrameType | None = None) -> None:
        fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))

    resize()
    signal.signal(signal.SIGWINCH, resize)
    saved = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)     # keeps what was typed ahead
    banner, inputs = _Banner(), [master]
    try:
        while True:
            ready = select.select(inputs, [], [])[0]
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:             # EIO: erl closed its terminal
                    data = b""
                if not data:
                    break
                _write_all(1, data)
                if len(inputs) == 1 and banner.seen_in(data):
                    _write_all(master, TAKE)
                    inputs.append(0)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _write_all(master, data)
                else:
                    inputs.remove(0)
    finally:
        termios.tcsetattr(0, termios.TCSAFLUSH, saved)
        signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        os.close(master)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def environment() -> dict[str, str]:
    """The workers run this Python unless PYBRIDGE_PYTHON says otherwise."""
    env = dict(os.environ)
    env.setdefault("PYBRIDGE_PYTHON", sys.executable)
    return env
