#!/bin/sh
# make bench-instructions: the Python worker's CPU instructions per port_control round trip,
# per pipelined echo, per port_call and per term sent with output_term
# (bench/pb_instructions.erl), for the compiled hot path and the
# pure-Python one (PYBRIDGE_PURE=1) side by side; written to bench/results/instructions.txt.
# Usage: bench/instructions.sh PYTHON EBIN (absolute paths)
set -e
PY=$1
EBIN=$2
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    echo "bench-instructions: skipped: valgrind is not installed (apt-get install valgrind)"
    exit 0
fi
DIR=_build/bench/instructions
rm -rf "$DIR"
mkdir -p "$DIR" bench/results
erlc -o "$DIR" bench/pb_instructions.erl
# the worker's interpreter: the venv's Python under callgrind, counting once told to
cat > "$DIR/python" <<EOF
#!/bin/sh
exec valgrind -q --tool=callgrind --instr-atstart=no --callgrind-out-file=\$PB_INSTR_OUT "$PY" "\$@"
EOF
chmod +x "$DIR/python"
for mode in compiled pure; do
    pure=; [ $mode = pure ] && pure=1
    PYBRIDGE_PURE=$pure PYBRIDGE_PYTHON="$(realpath "$DIR/python")" \
        PB_INSTR_OUT="$(realpath "$DIR")/$mode.cg" \
        erl -noshell -pa "$EBIN" -pa "$DIR" -eval 'pb_instructions:main()' \
        > "$DIR/$mode.out" 2> "$DIR/$mode.err" || { cat "$DIR/$mode.err"; exit 1; }
done
value() { awk -v k="$2" '$1 == k {print $2}' "$DIR/$1.out"; }
{
    echo "worker instructions per operation (callgrind; spin_us 0)"
    printf '%-36s %12s %12s\n' "" compiled "pure Python"
    printf '%-36s %12s %12s\n' "port_control round trip, 8 B" \
        "$(value compiled control)" "$(value pure control)"
    printf '%-36s %12s %12s\n' "pipelined echo, 8 B, per message" \
        "$(value compiled echo)" "$(value pure echo)"
    printf '%-36s %12s %12s\n' "port_call of {ok, 42, <<\"hello\">>}" \
        "$(value compiled call)" "$(value pure call)"
    printf '%-36s %12s %12s\n' "output_term of a 5-tuple, per term" \
        "$(value compiled term)" "$(value pure term)"
} | tee bench/results/instructions.txt
