"""The ``pybridge`` command: worker, new, doctor, shell and bench, each in a module of its own."""
import re
import sys
from pathlib import Path

import click

from .._version import __version__
from .._wire import protocol as P


@click.group()
@click.version_option(__version__, prog_name="pybridge")
def main() -> None:
    """pybridge: Erlang port drivers written in Python.

    Start with `pybridge new NAME`; try a driver by hand in `pybridge shell module:Class`.
    Shell completion, for bash (zsh_source and fish_source likewise):

    \b
        eval "$(_PYBRIDGE_COMPLETE=bash_source pybridge)"
    """


@main.command(short_help="Serve ports for a node (the Erlang app starts it).")
@click.option("--fd", type=int, default=3, show_default=True,
              help="The ctl socket inherited from the node's manager port.")
@click.option("--path", "paths", multiple=True,
              help="Directory to import driver modules from (repeatable).")
@click.option("--async-threads", type=int, default=4, show_default=True,
              help="Threads running async_ jobs.")
@click.option("--max-frame", type=click.IntRange(P.MIN_MAX_FRAME),
              default=P.DEFAULT_MAX_FRAME, show_default=True,
              help="Largest frame in bytes; over it is an error, not an allocation.")
@click.option("--spin-us", type=click.IntRange(0, P.MAX_SPIN_US),
              default=P.DEFAULT_SPIN_US, show_default=True,
              help="Microseconds to busy-poll for the next frame before sleeping.")
@click.option("--callback-limit", type=click.IntRange(0),
              default=P.DEFAULT_CALLBACK_LIMIT_MS, show_default=True,
              help="Milliseconds a callback may run before it is hung (0: no limit).")
@click.option("--node-pid", default="",
              help="A pid of the node in external term format, hex (pybridge_manager's).")
@click.option("--node-pid-raw", type=click.IntRange(0), default=0,
              help="The driver's raw value of that pid (the manager port adds it).")
@click.option("--node-limits", default="0,0",
              help="The node's process_limit and port_limit, comma-separated.")
def worker(fd: int, paths: tuple[str, ...], async_threads: int, max_frame: int,
           spin_us: int, callback_limit: int, node_pid: str, node_pid_raw: int,
           node_limits: str) -> None:
    """Serve ports for a node (started by the pybridge Erlang app, not by hand)."""
    from .._runtime.worker import main as run
    run(fd, list(paths), async_threads, max_frame, spin_us, callback_limit,
        (node_pid_raw, bytes.fromhex(node_pid)), _limits(node_limits))


def _limits(text: str) -> tuple[int, int]:
    try:
        process_limit, port_limit = (int(n) for n in text.split(","))
    except ValueError:
        raise click.BadParameter(f"not two integers: {text!r}",
                                 param_hint="--node-limits") from None
    return process_limit, port_limit


@main.command(short_help="Create a driver skeleton with its test.")
@click.argument("name")
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create NAME/.")
def new(name: str, where: Path) -> None:
    """Create NAME/: a driver skeleton, its Erlang usage (README.md) and a passing test."""
    from .scaffold import new as scaffold
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise click.BadParameter("a lowercase Python module name, like my_driver",
                                 param_hint="NAME")
    try:
        target = scaffold(name, where)
    except FileExistsError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"created {target}/: {name}.py, test_{name}.py, pytest.ini, README.md")
    click.echo(f"run its test against a real node: cd {target} && python -m pytest")


@main.command(short_help="Say what is missing, and how to get it.")
def doctor() -> None:
    """Check for erl, erl_driver.h, rebar3, a C compiler, the driver and the Python env."""
    from .doctor import checks
    results = checks()
    for what, ok, detail in results:
        click.echo(f"{'ok     ' if ok else 'MISSING'} {what}: {detail}")
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


@main.command(short_help="An Erlang shell with a port of SPEC open as Port.",
              context_settings={"ignore_unknown_options": True})
@click.argument("spec")
@click.argument("args", nargs=-1)
@click.option("--path", "paths", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Directory to import driver modules from (repeatable; default: the current "
                   "directory).")
@click.option("--ebin", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="ebin directory of the pybridge Erlang app (default: $PYBRIDGE_EBIN, else a "
                   "checkout's _build).")
def shell(spec: str, args: tuple[str, ...], paths: tuple[str, ...], ebin: Path | None) -> None:
    """Start an Erlang shell with the pybridge app running and a port of SPEC open as Port.

    SPEC is module:Class; ARGS reach the driver's start(command), joined by spaces. Try:

        pybridge shell --path examples compressor:Compressor 6
    """
    import shutil

    from .ebin import find_ebin
    from .shell import command, environment, run
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        raise click.BadParameter("module:Class, like my_driver:MyDriver", param_hint="SPEC")
    ebin = ebin or find_ebin()
    if ebin is None or not (ebin / "pybridge.app").exists():
        raise click.ClickException("no pybridge ebin found: build the Erlang app (rebar3 compile) "
                                   "in pybridge's checkout, or pass --ebin / set PYBRIDGE_EBIN")
    if shutil.which("erl") is None:
        raise click.ClickException("erl is not on PATH (pybridge doctor says what is missing)")
    sys.exit(run(command(ebin, spec, " ".join(args), list(paths) or ["."]), environment()))


@main.command(short_help="Run the benchmark scenarios against their baselines.")
@click.option("--only", metavar="IDS", default="",
              help="Comma-separated scenario ids (S1,S3...); results then go to "
                   "bench/results/partial.json and the published table is left alone.")
@click.option("--checkout", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="pybridge's source checkout (default: the one this package "
                                 "was installed from, or the current directory).")
def bench(only: str, checkout: Path | None) -> None:
    """Run `make bench` of pybridge's checkout: every scenario of docs/PERFORMANCE.md for
    pybridge and its baselines (C echo driver, CPython embedded in the VM, spawn port, pipe
    and spin floors) side by side, the median of 3 rounds each, with CPU time per operation.
    The whole run takes under 10 minutes on 2 cores."""
    import os
    import subprocess

    from .ebin import CHECKOUT

    roots = [checkout] if checkout else [CHECKOUT, Path(".").resolve()]
    root = next((r for r in roots if (r / "bench" / "pb_bench.erl").exists()), None)
    if root is None:
        raise click.ClickException("no pybridge checkout with bench/ found: pass --checkout")
    if only and not re.fullmatch(r"(S[1-9][0-9]?|P[1-9]|idle)(,(S[1-9][0-9]?|P[1-9]|idle))*",
                                 only.replace(" ", "")):
        raise click.BadParameter("ids like S1,S3,P1,idle", param_hint="--only")
    env = dict(os.environ, PB_BENCH_ONLY=only.replace(" ", ""))
    sys.exit(subprocess.call(["make", "-C", str(root), "bench"], env=env))
