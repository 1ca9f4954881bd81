#!/bin/bash
# A/B of two Hallmark binaries at one load level, interleaved so that both see the same machine:
#
#   benches/ab.sh ROUNDS SECONDS CONNECTIONS BINARY_A BINARY_B [more binaries...]
#
# Each binary gets a fresh database (hallmark_ab_<n>) and data directory, `hallmark init`, a
# generator key and `hallmark serve` as shipped (no thread or other overrides), on ports 8201...;
# after 10 s of quiet and a 3 s warm-up of each, ROUNDS times, wrk drives each in turn for SECONDS at CONNECTIONS with benches/load.py's
# Lua script (POST /v1/generations, count 1, PNG). Prints one line per run (images/s, p50 µs,
# failures, Server-Timing stages in ms per request) and each binary's mean. Needs PostgreSQL on
# 127.0.0.1:5432 (scripts/setup.sh) and wrk. Used for docs/benchmarks.md's 2026-12-07 section.
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,12p "$0"; exit 2; }
ROUNDS=$1; SECONDS_EACH=$2; CONNS=$3; shift 3
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/hallmark-ab.XXXXXX)
python3 "$REPO/benches/load.py" --write-lua "$WORK/gen.lua" >/dev/null
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
n=0
for binary in "$@"; do
    n=$((n + 1)); port=$((8200 + n))
    cp "$binary" "$WORK/bin-$n"
    (
        export HALLMARK__DATABASE__URL=postgres://postgres@127.0.0.1:5432/hallmark_ab_$n
        export HALLMARK__STORAGE__DATA_DIR=$WORK/data-$n HALLMARK__MODEL__DIR=$REPO/models
        export HALLMARK__MODEL__DEVICE=cpu HALLMARK__LOG__LEVEL=warn
        export HALLMARK__SERVER__PORT=$port HALLMARK__METRICS__LISTEN=127.0.0.1:0
        unset OMP_NUM_THREADS RUST_LOG
        psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS hallmark_ab_$n WITH (FORCE)" 2>/dev/null
        "$WORK/bin-$n" init >/dev/null
        "$WORK/bin-$n" keys create --role generator --name ab 2>/dev/null | tail -1 > "$WORK/key-$n"
        exec "$WORK/bin-$n" serve > "$WORK/serve-$n.log" 2>&1
    ) &
    PIDS+=($!)
    for _ in $(seq 1 180); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 1; done
    echo "$n = $binary (port $port)"
done
# Start-up work (the model's first passes, the registry's index, a young database) settles before
# anything is measured: 10 s of quiet, then a 3 s warm-up of each binary at 8 connections.
sleep 10
for i in $(seq 1 $n); do
    LOAD_API_KEY=$(cat "$WORK/key-$i") wrk -t1 -c8 -d3s -s "$WORK/gen.lua" \
        "http://127.0.0.1:$((8200 + i))/v1/generations" >/dev/null 2>&1
done
for _ in $(seq 1 "$ROUNDS"); do
    for i in $(seq 1 $n); do
        LOAD_API_KEY=$(cat "$WORK/key-$i") wrk -t1 -c"$CONNS" -d"${SECONDS_EACH}s" -s "$WORK/gen.lua" \
            "http://127.0.0.1:$((8200 + i))/v1/generations" 2>&1 | grep LOAD_RESULT | python3 -c "
import json, sys
d = json.loads(sys.stdin.read().split(' ', 1)[1]); n = max(d['ok'], 1)
stages = ' '.join(f'{k}={v / n:.2f}' for k, v in sorted(d['sums'].items()))
print('$i', round(d['ok'] / (d['duration_us'] / 1e6), 1), 'p50', d['p50_us'], 'bad', d['bad'], stages)"
    done
done | tee "$WORK/runs.txt"
awk '{s[$1] += $2; c[$1]++} END {for (k in s) printf "%s mean %.1f images/s over %d runs\n", k, s[k] / c[k], c[k]}' "$WORK/runs.txt" | sort
