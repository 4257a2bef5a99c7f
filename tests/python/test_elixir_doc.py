"""docs/ELIXIR.md is the mix consumer test: each file it shows is tests/consumers/mix_app's,
and each command it gives is one tests/consumers/run.sh runs (make test-consumers runs
them)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/ELIXIR.md").read_text()
APP = ROOT / "tests/consumers/mix_app"
RUN = (ROOT / "tests/consumers/run.sh").read_text()
# The one difference: the test fetches pybridge from a mirror of this checkout.
URL = ('git: System.fetch_env!("PYBRIDGE_GIT")', 'git: "https://your.git.host/pybridge.git"')


def shown_files() -> dict[str, str]:
    """`path`: followed by a fenced block -> the block."""
    return {m[1]: m[2] for m in re.finditer(r"^`([\w./]+)`:\n```\w+\n(.*?)^```$", DOC,
                                            re.M | re.S)}


def commands() -> list[str]:
    return [line for block in re.findall(r"^```sh\n(.*?)^```$", DOC, re.M | re.S)
            for line in block.splitlines()]


def test_every_file_shown_is_the_projects():
    shown = shown_files()
    files = {str(p.relative_to(APP)) for p in APP.rglob("*") if p.is_file()}
    assert set(shown) == files
    for path, text in shown.items():
        assert (APP / path).read_text().replace(*URL) == text, path


def test_every_command_is_run_by_the_consumer_test():
    cmds = commands()
    assert "mix test" in cmds and "mix deps.get" in cmds
    for cmd in cmds:
        if cmd.startswith(("mix new ", "export MIX_REBAR3=")):
            # run.sh copies the project (mix new's files are among those shown) and sets
            # MIX_REBAR3 itself
            continue
        assert re.search(rf"^\s*run (sh -c ')?(env -u PYBRIDGE_PYTHON )?{re.escape(cmd)}'?$",
                         RUN, re.M), cmd
    assert 'MIX_REBAR3="$(command -v rebar3)"' in RUN
