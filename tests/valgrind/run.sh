#!/bin/sh
# `make valgrind`: tests/valgrind/pb_valgrind.erl on the valgrind emulator under memcheck,
# the way OTP's `cerl -valgrind` runs it (erlexec only computes the emulator's arguments),
# then check.py judges the XML report. Run from the repository root after `make build`.
set -eu
V=$PWD/_build/valgrind
tests/valgrind/build_emulator.sh "$V"
erlc -o "$V" tests/valgrind/pb_valgrind.erl
# A pybridge app dir of its own: the compiled ebin, and the driver built with the usual
# flags (-O2 -g) into its priv, so that a concurrent `make asan` cannot swap it mid-run.
mkdir -p "$V/lib/pybridge"
ln -sfn "$PWD/_build/default/lib/pybridge/ebin" "$V/lib/pybridge/ebin"
make -s -C c_src PRIV="$V/lib/pybridge/priv"

export ROOTDIR BINDIR="$V/bin" EMU=beam PROGNAME=erl ERL_CRASH_DUMP="$V/erl_crash.dump"
ROOTDIR=$(erl -noshell -eval 'io:format("~ts", [code:root_dir()]), halt().')
ARGS=$("$BINDIR/erlexec" -emu_args_exit -noshell -pa "$V/lib/pybridge/ebin" -pa "$V" \
       -eval 'pb_valgrind:main()')

XML=$V/memcheck.xml
start=$(date +%s)
# --child-silent-after-fork: the driver's posix_spawn of the worker is a fork under
# valgrind, and the child must not write into the XML before it execs Python (which is not
# traced). --keep-debuginfo: the driver is unloaded (dlclose) before the leak check.
# erts.supp: ERTS's own leaks at halt, none of the driver's.
rc=0
OLDIFS=$IFS; IFS='
'
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --num-callers=40 --keep-debuginfo=yes \
    --child-silent-after-fork=yes --suppressions=tests/valgrind/erts.supp \
    --xml=yes --xml-file="$XML" --log-file="$V/memcheck.log" \
    "$BINDIR/beam.valgrind.smp" $ARGS || rc=$?
IFS=$OLDIFS
echo "pb_valgrind: exit status $rc after $(( $(date +%s) - start )) s"
"$PYBRIDGE_PYTHON" tests/valgrind/check.py "$XML" && [ "$rc" -eq 0 ]
