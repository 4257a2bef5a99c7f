"""The ``pybridge`` command."""
import click

from . import __version__


@click.group()
@click.version_option(__version__, prog_name="pybridge")
def main() -> None:
    """pybridge: Erlang port drivers written in Python."""


@main.command()
@click.option("--fd", type=int, default=3, show_default=True,
              help="The ctl socket inherited from the node's manager port.")
@click.option("--path", "paths", multiple=True, help="Directory to import driver modules from (repeatable).")
@click.option("--async-threads", type=int, default=4, show_default=True,
              help="Threads running async_ jobs.")
@click.option("--max-frame", type=click.IntRange(64), default=256 << 20, show_default=True,
              help="Largest frame in bytes; over it is an error, not an allocation.")
def worker(fd: int, paths: tuple, async_threads: int, max_frame: int) -> None:
    """Serve ports for a node (started by the pybridge Erlang app, not by hand)."""
    from ._worker import main as run
    run(fd, list(paths), async_threads, max_frame)
