#!/usr/bin/env bash
# Compares ltprotocol (`ltp bench`) with the baselines, side by side on this machine.
#
#   bench/compare.sh [ROUNDS]     # default 5 interleaved rounds
#   bench/compare.sh --quick      # one short round (CI: proves it still works)
#   bench/compare.sh --no-ancestor [...]   # without the Python ancestor (no venv, no registry)
#   bench/compare.sh --no-python [...]     # without the Python package ltprotocol-rs
#   bench/compare.sh --only oneway16,fanout64x100 [...]   # only these workloads (names below)
#
# Builds release binaries once, then for every round, every workload and every implementation
# starts that implementation's server (`… serve --listen 127.0.0.1:0`, reading the port from
# its `listening` line), runs that implementation's client against it, and stops the server by
# its PID. Every run checks its REPORTs (the raw sink: its byte count); an unverified run is
# left out and reported.
# Implementations: ltp-codec (ltp bench serve, counting DATA in place with Handler::inspect, +
# ltp client on FrameCodec), ltp-frame and ltp-typed-async (one-way 16 B only: the same client;
# the server takes every frame through the ordinary async Handler::message, as a frame-level
# Unknown with a Bytes body, or decoded into a derived enum: `ltp bench serve --api
# frame|typed-async`), ltp-runtime (the ltp-codec server, client through
# ReconnectingClient::send, one message at a time), handrolled and lengthdelimited
# (bench/src/bin/*, current-thread runtimes), ancestor (the Python ltprotocol 0.2.1 on Twisted,
# its client against its server: bench/ancestor/, set up here in a virtual environment, which
# needs python3 with venv and the Python package registry the first time); for one-way 16 B and
# fan-out, ancestor-server (the ancestor's server driven by the hand-rolled client: its own
# Python receivers, not its server, limit the ancestor row there) and python-server (our Python
# package ltprotocol-rs running the ancestor's bench server, unchanged but for listening: a Python
# `recv_callback` per message and `server.send` broadcasts, driven by the same hand-rolled
# client; built and installed in python/.venv-test by python/build.sh --no-pytest, which needs
# the Rust toolchain and the Python package registry); for the two large-body one-way
# workloads only, rawtcp (bench/src/bin/baseline-rawtcp.rs: no framing at all, 256 KiB chunks
# into a sink that discards them and answers the byte count: the ceiling for one-way bytes).
# The ltp processes use ltp's multi-threaded runtime (one worker per core). The ancestor runs
# every workload: the u32 layout is its `len_type='I'`, and its 8 connections share one
# single-threaded reactor per process.
#
# Prints the machine and a table of medians with min–max and ratios against the hand-rolled
# loop, the ancestor, its server alone and the raw sink (where they ran); writes bench/results/latest.json (summary),
# bench/results/latest-raw.jsonl (every run) and bench/results/latest.svg (the chart).
set -euo pipefail

cd "$(dirname "$0")/.."

ROUNDS=5
QUICK=0
ANCESTOR=1
PYTHON_PACKAGE=1
ONLY=
while [ $# -gt 0 ]; do
    arg=$1
    shift
    case "$arg" in
        --only) ONLY=,${1:?--only takes a comma-separated list of workloads},; shift ;;
        --quick) QUICK=1; ROUNDS=1 ;;
        --no-ancestor) ANCESTOR=0 ;;
        --no-python) PYTHON_PACKAGE=0 ;;
        ''|*[!0-9]*) echo "usage: bench/compare.sh [--quick] [--no-ancestor] [--no-python] [--only W1,W2] [ROUNDS]" >&2; exit 2 ;;
        *) ROUNDS=$arg ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    DUR=0.3; FAN100=2000; FAN1000=200; CONNS=1000
else
    DUR=2; FAN100=20000; FAN1000=2000; CONNS=10000
fi
# The ancestor's fan-out runs a quarter of the broadcasts, to take about as long as the others.
ANC_FAN100=$((FAN100 / 4)); ANC_FAN1000=$((FAN1000 / 4))

echo "building release binaries…" >&2
cargo build --release --quiet -p ltprotocol-cli -p bench
BIN=target/release

ANCESTOR_PY=
ANCESTOR_VERSIONS=
if [ "$ANCESTOR" = 1 ]; then
    echo "setting up the Python ancestor (bench/ancestor/setup.sh)…" >&2
    if ! ANCESTOR_PY=$(bash bench/ancestor/setup.sh); then
        echo "compare.sh: setting up the Python ancestor failed (see above);" \
            "bench/compare.sh --no-ancestor compares without it" >&2
        exit 1
    fi
    ANCESTOR_VERSIONS=", $("$ANCESTOR_PY" -c 'import sys, twisted
print("Python %d.%d.%d" % sys.version_info[:3], "+ Twisted", twisted.__version__)')"
fi
ANCESTOR_BENCH=bench/ancestor/ltp_ancestor_bench.py

PACKAGE_PY=
if [ "$PYTHON_PACKAGE" = 1 ]; then
    echo "building and installing the Python package (python/build.sh --no-pytest)…" >&2
    if ! bash python/build.sh --no-pytest; then
        echo "compare.sh: building the Python package failed (see above);" \
            "bench/compare.sh --no-python compares without it" >&2
        exit 1
    fi
    PACKAGE_PY=python/.venv-test/bin/python
fi
# Each conns run holds CONNS sockets in the client and as many in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT=bench/results
mkdir -p "$OUT"
RAW=$OUT/latest-raw.jsonl
: > "$RAW"
TMP=$(mktemp -d)
SERVER_PID=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

MACHINE="machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), \
$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(rustc --version)\
$ANCESTOR_VERSIONS"

# server_cmd IMPL LAYOUT → the command line of IMPL's server
server_cmd() {
    case "$1" in
        ltp-frame) echo "$BIN/ltp bench serve --api frame --listen 127.0.0.1:0 --layout $2" ;;
        ltp-typed-async) echo "$BIN/ltp bench serve --api typed-async --listen 127.0.0.1:0 --layout $2" ;;
        ltp-*) echo "$BIN/ltp bench serve --listen 127.0.0.1:0 --layout $2" ;;
        handrolled) echo "$BIN/baseline-handrolled serve --listen 127.0.0.1:0 --layout $2" ;;
        lengthdelimited) echo "$BIN/baseline-lengthdelimited serve --listen 127.0.0.1:0 --layout $2" ;;
        rawtcp) echo "$BIN/baseline-rawtcp serve --listen 127.0.0.1:0 --layout $2" ;;
        ancestor*) echo "$ANCESTOR_PY $ANCESTOR_BENCH serve --listen 127.0.0.1:0 --layout $2" ;;
        python-server) echo "$PACKAGE_PY $ANCESTOR_BENCH serve --listen 127.0.0.1:0 --layout $2" ;;
    esac
}

# client_cmd IMPL → IMPL's client, before the mode
client_cmd() {
    case "$1" in
        ltp-*) echo "$BIN/ltp bench" ;;
        handrolled) echo "$BIN/baseline-handrolled" ;;
        lengthdelimited) echo "$BIN/baseline-lengthdelimited" ;;
        rawtcp) echo "$BIN/baseline-rawtcp" ;;
        ancestor) echo "$ANCESTOR_PY $ANCESTOR_BENCH" ;;
        ancestor-server|python-server) echo "$BIN/baseline-handrolled" ;;
    esac
}

client_extra() {
    case "$1" in
        ltp-runtime) echo "--client runtime" ;;
        *) echo "" ;;
    esac
}

# impl_load IMPL "MODE ARGS" → the arguments IMPL runs with (the ancestor broadcasts fewer)
impl_load() {
    case "$1" in
        ancestor*) echo "$2" | sed "s/--messages $FAN100\$/--messages $ANC_FAN100/; \
            s/--messages $FAN1000\$/--messages $ANC_FAN1000/" ;;
        *) echo "$2" ;;
    esac
}

# Workloads: NAME|LAYOUT|MODE ARGS|IMPLEMENTATIONS
WORKLOADS=(
    "oneway16|ltprotocol|throughput --body-size 16 --duration $DUR|ltp-codec ltp-frame ltp-typed-async ltp-runtime handrolled lengthdelimited ancestor ancestor-server python-server"
    "oneway16x8|ltprotocol|throughput --body-size 16 --connections 8 --duration $DUR|ltp-codec handrolled lengthdelimited ancestor"
    "oneway-big65532|ltprotocol|throughput --body-size 65532 --duration $DUR|ltp-codec ltp-runtime handrolled lengthdelimited ancestor rawtcp"
    "oneway-1m-u32|u32|throughput --body-size 1048576 --duration $DUR|ltp-codec handrolled lengthdelimited ancestor rawtcp"
    "pingpong16|ltprotocol|pingpong --body-size 16 --duration $DUR|ltp-codec ltp-runtime handrolled lengthdelimited ancestor"
    "fanout64x100|ltprotocol|fanout --body-size 64 --connections 100 --messages $FAN100|ltp-codec handrolled lengthdelimited ancestor ancestor-server python-server"
    "fanout64x1000|ltprotocol|fanout --body-size 64 --connections 1000 --messages $FAN1000|ltp-codec handrolled lengthdelimited ancestor ancestor-server"
    "conns|ltprotocol|conns --connections $CONNS|ltp-codec handrolled lengthdelimited ancestor"
)

# json_string TEXT → TEXT as a JSON string literal
json_string() {
    printf '"%s"' "$(printf '%s' "$1" | tr '\n\t' '  ' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# run_one ROUND WORKLOAD LAYOUT "MODE ARGS" IMPL: appends one line to $RAW
run_one() {
    local round=$1 workload=$2 layout=$3 impl=$5
    local load
    load=$(impl_load "$impl" "$4")
    # A fresh file per run: the server's redirection may happen after we start reading.
    local out=$TMP/server.$round.$workload.$impl.out
    : > "$out"
    local line addr result rc
    # shellcheck disable=SC2046,SC2091  # the command line is meant to be split and run
    $(server_cmd "$impl" "$layout") >> "$out" 2> "$TMP/server.err" &
    SERVER_PID=$!
    addr=
    for _ in $(seq 200); do
        line=$(head -n1 "$out" 2>/dev/null || true)
        case "$line" in
            *'"listening"'*'}')
                addr=$(echo "$line" | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p')
                break ;;
        esac
        sleep 0.05
    done
    local extra
    extra=$(client_extra "$impl")
    if [ "${load%% *}" = conns ]; then extra="$extra --server-pid $SERVER_PID"; fi
    if [ -z "$addr" ]; then
        result='{"verified":false,"error":"the server did not report its address"}'
    else
        rc=0
        # shellcheck disable=SC2046,SC2086
        timeout 300 $(client_cmd "$impl") $load --layout "$layout" --target "$addr" $extra \
            > "$TMP/client.out" 2> "$TMP/client.err" || rc=$?
        result=$(tail -n1 "$TMP/client.out")
        case "$result" in
            *'"event":"result"'*) ;;
            *) result="{\"verified\":false,\"error\":$(json_string "exit $rc: $(tail -n3 "$TMP/client.err")")}" ;;
        esac
    fi
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    echo "{\"round\":$round,\"workload\":\"$workload\",\"impl\":\"$impl\",${result#\{}" >> "$RAW"
    printf '  round %s %-16s %-16s %s\n' "$round" "$workload" "$impl" \
        "$(echo "$result" | grep -o '"\(msgs_per_sec\|wire_mb_per_sec\|rss_per_conn_bytes\|verified\|error\)":[^,]*' | tr '\n' ' ')" >&2
}

echo "$MACHINE" >&2
for round in $(seq "$ROUNDS"); do
    for spec in "${WORKLOADS[@]}"; do
        IFS='|' read -r workload layout load impls <<< "$spec"
        if [ -n "$ONLY" ] && [ "${ONLY#*,"$workload",}" = "$ONLY" ]; then continue; fi
        for impl in $impls; do
            if [ "$ANCESTOR" = 0 ] && [ "${impl#ancestor}" != "$impl" ]; then continue; fi
            if [ "$PYTHON_PACKAGE" = 0 ] && [ "${impl#python}" != "$impl" ]; then continue; fi
            run_one "$round" "$workload" "$layout" "$load" "$impl"
        done
    done
done

echo
echo "## ltp bench comparison: $ROUNDS round(s)$([ "$QUICK" = 1 ] && echo ', quick')"
status=0
"$BIN/compare-report" "$RAW" "$OUT/latest.json" "$MACHINE" || status=$?
"$BIN/compare-chart" "$OUT/latest.json" "$OUT/latest.svg" || status=1
echo
echo "wrote $OUT/latest.json, $RAW and the chart $OUT/latest.svg"
exit "$status"
