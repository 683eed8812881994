#!/usr/bin/env bash
# Instructions per request of `switchyard serve` (callgrind), REST DeactivateUser/ReactivateUser
# over HTTP/1.1 as bench/run drives it, for one store:
#
#   bench/callgrind.sh sqlite|memory [BIN]     # BIN: a release switchyard (default target/release)
#   PROTOCOL=grpc bench/callgrind.sh memory    # the same work over another protocol (loadgen's:
#                                              # grpc, grpc-web, connect-json, connect-proto, rest-h2)
#   bench/callgrind.sh gateway                 # `switchyard gateway` (under callgrind) in front of
#                                              # the raw tonic ceiling (not), PROTOCOL as above
#   bench/callgrind.sh ceiling-tonic|ceiling-hyper   # the raw ceilings themselves (PROTOCOL=grpc
#                                              # for tonic's; hyper's takes rest-h1 or rest-h2)
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
PROTOCOL=${PROTOCOL:-rest-h1}
UPSTREAM_PID=""
mkdir -p "$WORK/data"
if [[ $STORE == ceiling-* ]]; then
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
        "$(dirname "$LOADGEN")/$STORE" "$ADDR" 2>"$WORK/valgrind.log" &
elif [[ $STORE == gateway ]]; then
    UPSTREAM=127.0.0.1:$((PORT + 1))
    "$(dirname "$LOADGEN")/ceiling-tonic" "$UPSTREAM" &
    UPSTREAM_PID=$!
    trap 'kill "$UPSTREAM_PID" 2>/dev/null; cleanup' EXIT
    SWITCHYARD_LOG_FILTER=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/callgrind.out" "$BIN" gateway --listen "$ADDR" \
        --upstream "http://$UPSTREAM" --proto zitadel/management.proto --proto-path proto \
        --rest-prefix zitadel.management.v1.ManagementService=/management/v1 \
        2>"$WORK/valgrind.log" &
else
    SWITCHYARD_LOG_FILTER=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/callgrind.out" "$BIN" serve --store "$STORE" \
        --listen "$ADDR" --data-dir "$WORK/data" --config /dev/null 2>"$WORK/valgrind.log" &
fi
SERVER_PID=$!
for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/valgrind.log" >&2; exit 1; }
    sleep 0.1
done
if [[ $STORE == gateway || $STORE == ceiling-* ]]; then
    # The ceiling ignores the token and the ids.
    echo "ceiling-token" >"$WORK/data/admin.pat"
    seq 1 "$((2 * POOL))" | sed 's/^/31000000000000/' >"$WORK/ids"
else
    "$LOADGEN" setup --addr "$ADDR" --token-file "$WORK/data/admin.pat" --users "$((2 * POOL))" \
        --out "$WORK/ids" >/dev/null
fi
if [[ $PROTOCOL == rest-h1 ]]; then
    # One warm-up pass over the first half of the pool, uninstrumented.
    wrk -t1 "-c$CONNECTIONS" -d2s -s bench/reactivate.lua "http://$ADDR" -- "$WORK/ids" \
        "$WORK/data/admin.pat" 0 "$POOL" >/dev/null
    callgrind_control -i on "$SERVER_PID" >/dev/null
    line=$(wrk -t1 "-c$CONNECTIONS" "-d${SECONDS_LOAD}s" -s bench/reactivate.lua "http://$ADDR" -- \
        "$WORK/ids" "$WORK/data/admin.pat" "$POOL" "$POOL" | grep '^{')
else
    # loadgen's call slots own one user each (4 connections x 4 streams); it warms up for 2 s
    # before it measures, and callgrind is switched on only for the measured window.
    "$LOADGEN" run --addr "$ADDR" --protocol "$PROTOCOL" --token-file "$WORK/data/admin.pat" \
        --ids "$WORK/ids" --connections 4 --streams 4 --warmup 2 --duration 2 >/dev/null
    callgrind_control -i on "$SERVER_PID" >/dev/null
    line=$("$LOADGEN" run --addr "$ADDR" --protocol "$PROTOCOL" --token-file "$WORK/data/admin.pat" \
        --ids "$WORK/ids" --connections 4 --streams 4 --warmup 0 --duration "$SECONDS_LOAD")
fi
callgrind_control -d "$SERVER_PID" >/dev/null
callgrind_control -i off "$SERVER_PID" >/dev/null
requests=$(echo "$line" | sed -E 's/.*"requests":([0-9]+).*/\1/')
errors=$(echo "$line" | sed -E 's/.*"errors":([0-9]+).*/\1/')
instructions=$(cat "$WORK"/callgrind.out* | awk '/^totals:/ {s += $2} END {print s}')
if [[ -n ${KEEP:-} ]]; then cp "$WORK"/callgrind.out* "$KEEP"/; fi
echo "{\"store\":\"$STORE\",\"protocol\":\"$PROTOCOL\",\"requests\":$requests,\"errors\":$errors,\"instructions\":$instructions,\"per_request\":$((instructions / requests))}"
