# bench/serve_lib.sh - sourced by the daemon benchmarks (bench_server.sh, bench_server_load.sh).
# start_serve ARGS...: run `$MLXR serve ARGS --home HOME` in the background with a fresh temporary
# HOME, wait until it listens; sets port. On exit the server is stopped and HOME removed.
start_serve() {
    home=$(mktemp -d)
    local log=$home/serve.log
    "$MLXR" "$@" --home "$home" 2> "$log" &
    spid=$!
    trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$home"' EXIT
    port=""
    for _ in $(seq 1 100); do
        port=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$log"; exit 1; }
}
