#!/bin/sh
# make test-consumers: pybridge as the dependency of a rebar3 project and of a mix project,
# fetched with git from a mirror (in _build/consumers) whose main is a commit of this
# checkout's HEAD: they build pybridge as committed. Their own sources are copied from here.
#   rebar3_app: rebar3 compile (pybridge's own hook builds the driver), EUnit, then a relx
#               release started with bin/rebar3_app foreground
#   mix_app:    docs/ELIXIR.md's project: its venv with deps/pybridge's Python package, mix test
#               (mix builds pybridge with rebar3), then a mix release run with eval
# All state stays in _build/consumers; output goes to _build/consumers/last.log, shown on failure.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$ROOT/_build/consumers
LOG=$WORK/last.log
VENV=$(dirname "$(dirname "${PYBRIDGE_PYTHON:?set PYBRIDGE_PYTHON to the venv python with pybridge}")")
mkdir -p "$WORK"
: >"$LOG"

fail() { tail -n 60 "$LOG"; echo "test-consumers: $*" >&2; exit 1; }
run() { "$@" >>"$LOG" 2>&1 || fail "failed: $*"; }
# A started release must answer with $1; $2... is the command.
expect() {
    want=$1; shift
    got=$("$@" 2>>"$LOG" | tee -a "$LOG" | tail -n 1)
    [ "$got" = "$want" ] || fail "expected $want, got $got from: $*"
}
# The consumer's sources next to its build state (kept: _build, deps, locks).
copy() {
    mkdir -p "$WORK/$1"
    find "$WORK/$1" -mindepth 1 -maxdepth 1 ! -name _build ! -name deps ! -name '*.lock' ! -name .venv \
        -exec rm -rf {} +
    (cd "$ROOT/tests/consumers/$1" && tar cf - .) | (cd "$WORK/$1" && tar xf -)
}

# The mirror's main is one parentless commit of HEAD's tree, made from the checkout's own
# objects (alternates): mix cannot fetch from a shallow repository, and CI clones often are.
# Fixed author and date: the same HEAD gives the same commit, so the locks stay put.
MIRROR=$WORK/pybridge.git
[ -d "$MIRROR" ] || run git init -q --bare "$MIRROR"
HEAD_SHA=$(git -C "$ROOT" rev-parse HEAD)
git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir | sed 's|$|/objects|' \
    >"$MIRROR/objects/info/alternates"
REF=$(GIT_AUTHOR_NAME=pybridge GIT_AUTHOR_EMAIL=pybridge@localhost GIT_AUTHOR_DATE='@0 +0000' \
      GIT_COMMITTER_NAME=pybridge GIT_COMMITTER_EMAIL=pybridge@localhost \
      GIT_COMMITTER_DATE='@0 +0000' \
      git --git-dir="$MIRROR" commit-tree -m "pybridge $HEAD_SHA" "$HEAD_SHA^{tree}")
run git --git-dir="$MIRROR" update-ref refs/heads/main "$REF"
export PYBRIDGE_GIT="file://$MIRROR"

copy rebar3_app
cd "$WORK/rebar3_app"
# A lock from an earlier HEAD moves the way a project moves it.
if [ -f rebar.lock ] && ! grep -q "$REF" rebar.lock; then run rebar3 upgrade pybridge; fi
run rebar3 compile
[ -f _build/default/lib/pybridge/priv/pybridge.so ] || fail "rebar3: no driver in pybridge's priv"
run rebar3 eunit
run rebar3 release
# The release finds Python through its sys.config (PYBRIDGE_VENV), not PYBRIDGE_PYTHON.
expect '{<<"HELLO">>,"olleh"}' env -u PYBRIDGE_PYTHON PYBRIDGE_VENV="$VENV" timeout 60 \
    _build/default/rel/rebar3_app/bin/rebar3_app foreground \
    -eval 'R = (catch rebar3_app:roundtrip()), io:format("~0p~n", [R]), halt()'

copy mix_app
cd "$WORK/mix_app"
export MIX_ENV=test HEX_OFFLINE=1 MIX_REBAR3="$(command -v rebar3)"
if [ -f mix.lock ] && ! grep -q "$REF" mix.lock; then run mix deps.update pybridge; fi
run mix deps.get
# docs/ELIXIR.md's virtualenv, made again for each new HEAD: config/config.exs names it, so
# mix test runs the Python package of deps/pybridge, not PYBRIDGE_PYTHON's
if [ "$(cat .venv/pybridge_ref 2>/dev/null)" != "$REF" ]; then
    rm -rf .venv
    run sh -c 'python3 -m venv .venv && .venv/bin/pip install ./deps/pybridge'
    echo "$REF" >.venv/pybridge_ref
fi
run env -u PYBRIDGE_PYTHON mix test
run mix release --overwrite --quiet
# The release finds Python through config/runtime.exs (PYBRIDGE_VENV).
expect '{<<"HELLO">>,"cba",{count,5,nil}}' env -u PYBRIDGE_PYTHON PYBRIDGE_VENV="$VENV" \
    timeout 60 _build/test/rel/mix_app/bin/mix_app eval \
    '{:ok, _} = Application.ensure_all_started(:mix_app); :io.format("~0p~n", [MixApp.roundtrip()])'
echo "consumers: rebar3 (EUnit, relx release) and mix (ExUnit, mix release) use pybridge $(echo "$HEAD_SHA" | cut -c1-12)"
