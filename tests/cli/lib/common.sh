# tests/cli/lib/common.sh - what the shell tests share (sourced, not run; tests/cli/*.sh are the
# tests, this folder is not globbed): pass/fail counters, a temporary folder removed on exit
# together with every process recorded in `pids`, python/JSON helpers and starting `mlxr serve`.
# The sourcing script sets MLXR (and DATA if it needs it) first, then calls `finish NAME` last.

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# check CONDITION MESSAGE: evaluate the condition (a shell string), count the outcome
check() { if eval "$1"; then ok; else bad "$2"; fi; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null; done
    [ -n "${MLXR_KEEP_TMP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

# need TOOL...: stop the test with a clear message when a tool is missing
need() {
    for tool in "$@"; do
        command -v "$tool" > /dev/null || { echo "$(basename "$0"): needs $tool" >&2; exit 1; }
    done
}

PY=$(command -v python3 || echo python3)
py() { "$PY" "$@"; }
# json FILE PYTHON-EXPR: evaluate EXPR with j = the parsed file; exit 0 if truthy
json() { py -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1" 2>/dev/null; }

# start_server NAME ARGS...: start `mlxr serve --port 0 -t 2 ARGS` (stdout and stderr in
# $tmp/NAME.out and $tmp/NAME.log), wait until it listens; sets PORT and SPID, records the pid
start_server() {
    local name=$1
    shift
    "$MLXR" serve --port 0 -t 2 "$@" > "$tmp/$name.out" 2> "$tmp/$name.log" &
    SPID=$!
    pids+=("$SPID")
    PORT=""
    for _ in $(seq 1 100); do
        PORT=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$tmp/$name.log" | grep -o '[0-9]*$')
        [ -n "$PORT" ] && break
        sleep 0.1
    done
    if [ -z "$PORT" ]; then
        bad "server $name did not start: $(cat "$tmp/$name.log")"
        return 1
    fi
}

# finish NAME: the summary line; the exit status says whether everything passed
finish() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
