#!/bin/sh
# make test-pythons: the Python test suite (against the real node) under every CPython 3.10+
# found here: pyenv's versions (`pyenv root`, else ~/.pyenv), python3.10 .. python3.19 and
# python3 on PATH. One interpreter per minor version, each in a venv of its own (.venvs/X.Y;
# the version .venv was made with uses .venv), run one after the other. The first (.venv's)
# runs the whole suite; the others all but the tests marked heavy (pyproject.toml: the
# longest, spent on the VM, the nanny, the benchmarks, the rings and the node's map
# order), which keeps make test within its 15 minutes. Prints what ran and each result,
# and which interpreters were found but could not be used; fails if a suite fails or if
# no interpreter could be used. Logs in _build/pythons/X.Y.log.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
LOGS=_build/pythons
mkdir -p "$LOGS"

# "X.Y X.Y.Z" for a CPython 3.10 or newer, nothing for anything else (a pyenv shim whose
# version is not active fails here too).
probe() {
    timeout 20 "$1" -c 'import platform, sys
if platform.python_implementation() == "CPython" and sys.version_info >= (3, 10):
    print("%d.%d %s" % (sys.version_info[0], sys.version_info[1], platform.python_version()))' \
        2>/dev/null
}

PYENV_VERSIONS=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")/versions
[ -d "$PYENV_VERSIONS" ] || echo "test-pythons: no pyenv here; only the Pythons on PATH"
candidates() {
    [ -x .venv/bin/python ] && echo .venv/bin/python
    for p in "$PYENV_VERSIONS"/*/bin/python; do [ -x "$p" ] && echo "$p"; done
    for m in 10 11 12 13 14 15 16 17 18 19; do command -v "python3.$m"; done
    command -v python3
}

# The venv's install is stale once pyproject.toml, setup.py or the compiled hot path's C
# sources are newer than it (pip install -e builds the extension once).
stale() {
    for f in pyproject.toml setup.py pybridge/_wire/_accel*.[ch]; do
        [ "$1/.installed" -nt "$f" ] || return 0
    done
    return 1
}

seen=" "; ran=0; failed=0; summary=""
for c in $(candidates); do
    v=$(probe "$c") || continue
    [ -n "$v" ] || continue
    minor=${v%% *}; full=${v#* }
    case "$seen" in *" $minor "*) continue ;; esac
    seen="$seen$minor "
    if [ "$c" = .venv/bin/python ]; then venv=.venv; else venv=.venvs/$minor; fi
    log=$LOGS/$minor.log
    if [ ! -x "$venv/bin/python" ] && ! "$c" -m venv "$venv" >"$log" 2>&1; then
        rm -rf "$venv"
        summary="$summary
  Python $full ($c): not usable, it cannot make a venv (see $log)"
        continue
    fi
    if stale "$venv"; then
        if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' \
            >"$log" 2>&1; then
            failed=$((failed + 1))
            summary="$summary
  Python $full ($venv): FAILED to install pybridge into its venv (see $log)"
            continue
        fi
        touch "$venv/.installed"
    fi
    if [ "$ran" -eq 0 ]; then which="the whole suite"; set -- ; else
        which="the suite but its heavy tests"; set -- -m "not heavy"; fi
    echo "==> Python $full: $which in $venv"
    if PYBRIDGE_PYTHON="$ROOT/$venv/bin/python" "$venv/bin/python" -m pytest -q \
        -p no:cacheprovider "$@" >"$log" 2>&1; then
        result=$(tail -n 1 "$log" | tr -d '=' | xargs)
    else
        failed=$((failed + 1))
        tail -n 40 "$log"
        result="FAILED, $(tail -n 1 "$log" | tr -d '=' | xargs) (see $log)"
    fi
    ran=$((ran + 1))
    summary="$summary
  Python $full ($venv, $which): $result"
done

echo "test-pythons: $ran interpreter(s) ran the suite:$summary"
[ "$ran" -gt 0 ] || { echo "test-pythons: no CPython 3.10 or newer could run the suite" >&2; exit 1; }
[ "$failed" -eq 0 ] || { echo "test-pythons: $failed failed" >&2; exit 1; }
