#!/usr/bin/env bash
# Instructions per request of `switchyard serve` (callgrind), REST DeactivateUser/ReactivateUser
# over HTTP/1.1 as bench/run drives it, for one store:
#
#   bench/callgrind.sh sqlite|memory [BIN]     # BIN: a release switchyard (default target/release)
#
# The server runs under valgrind with instrumentation off while it starts and the user pool is
# made, on for REQUESTS_SECONDS of wrk load only; the count covers every thread of the process.
# Prints one JSON line: store, requests, instructions, instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${1:?sqlite or memory}
BIN=${2:-target/release/switchyard}
LOADGEN=${LOADGEN:-target/release/loadgen}
PORT=${PORT:-38180}
SECONDS_LOAD=${REQUESTS_SECONDS:-10}
POOL=${POOL:-512}
CONNECTIONS=${CONNECTIONS:-16}
ADDR=127.0.0.1:$PORT
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/data"
SWITCHYARD_LOG_FILTER=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$WORK/callgrind.out" "$BIN" serve --store "$STORE" \
    --listen "$ADDR" --data-dir "$WORK/data" --config /dev/null 2>"$WORK/valgrind.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/valgrind.log" >&2; exit 1; }
    sleep 0.1
done
"$LOADGEN" setup --addr "$ADDR" --token-file "$WORK/data/admin.pat" --users "$((2 * POOL))" \
    --out "$WORK/ids" >/dev/null
# One warm-up pass over the first half of the pool, uninstrumented.
wrk -t1 "-c$CONNECTIONS" -d2s -s bench/reactivate.lua "http://$ADDR" -- "$WORK/ids" \
    "$WORK/data/admin.pat" 0 "$POOL" >/dev/null
callgrind_control -i on "$SERVER_PID" >/dev/null
line=$(wrk -t1 "-c$CONNECTIONS" "-d${SECONDS_LOAD}s" -s bench/reactivate.lua "http://$ADDR" -- \
    "$WORK/ids" "$WORK/data/admin.pat" "$POOL" "$POOL" | grep '^{')
callgrind_control -d "$SERVER_PID" >/dev/null
callgrind_control -i off "$SERVER_PID" >/dev/null
requests=$(echo "$line" | sed -E 's/.*"requests":([0-9]+).*/\1/')
errors=$(echo "$line" | sed -E 's/.*"errors":([0-9]+).*/\1/')
instructions=$(cat "$WORK"/callgrind.out* | awk '/^totals:/ {s += $2} END {print s}')
if [[ -n ${KEEP:-} ]]; then cp "$WORK"/callgrind.out* "$KEEP"/; fi
echo "{\"store\":\"$STORE\",\"requests\":$requests,\"errors\":$errors,\"instructions\":$instructions,\"per_request\":$((instructions / requests))}"
