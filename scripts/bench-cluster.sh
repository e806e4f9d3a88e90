#!/usr/bin/env bash
# Presence through Redis: two release `vigil serve --cluster` nodes and one
# redis-server on this machine.
#  1. churn: connect/HELLO/close as fast as one client thread goes, half on
#     each node: presence updates (claims + releases) per second through
#     Redis, and the node CPU per update;
#  2. takeover across nodes: p50/p99 from the new HELLO to the old
#     connection's BYE replaced;
#  3. heartbeats with and without --cluster, side by side: 1,000 connections
#     beating every second for HOLD; server CPU-seconds per million
#     heartbeats (heartbeats never touch Redis, so the two should match).
# Prints a table and writes target/bench/cluster.json.
#
# Usage: scripts/bench-cluster.sh [SECONDS]   (default 20 for the churn run)
# Environment: HOLD (default 20s), RUST_LOG (default warn: the default
# `info` logs each offline, which is the cost of logging, not of presence).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
HOLD=${HOLD:-20s}
export RUST_LOG=${RUST_LOG:-warn}
bash scripts/install-deps.sh
cargo build --release --quiet
mkdir -p target/bench
BIN=target/release/vigil
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

RPORT=$(free_port); PA=$(free_port); PB=$(free_port); PC=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >/dev/null &
RPID=$!; pids+=($RPID)
for _ in $(seq 50); do redis-cli -p "$RPORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
$BIN serve --listen 127.0.0.1:$PA --cluster redis://127.0.0.1:$RPORT --node-id a --stats-interval 0ms &
APID=$!; pids+=($APID)
$BIN serve --listen 127.0.0.1:$PB --cluster redis://127.0.0.1:$RPORT --node-id b --stats-interval 0ms &
BPID=$!; pids+=($BPID)
sleep 1

a0=$(cpu_ticks $APID); b0=$(cpu_ticks $BPID); r0=$(cpu_ticks $RPID)
churn=$(python3 scripts/cluster_churn.py "$PA" "$PB" "$SECS")
a1=$(cpu_ticks $APID); b1=$(cpu_ticks $BPID); r1=$(cpu_ticks $RPID)
kill $APID $BPID; wait $APID $BPID 2>/dev/null || true

# Heartbeats: one node with --cluster, one without, same load, one after the other.
hb() { # $1: extra flags; prints CPU-s per million heartbeats
  local port; port=$(free_port)
  $BIN serve --listen 127.0.0.1:$port --interval 1s --timeout 5s --stats-interval 0ms $1 &
  local spid=$!; pids+=($spid)
  sleep 0.5
  local c0; c0=$(cpu_ticks $spid)
  local json; json=$($BIN load --server 127.0.0.1:$port --conns 1000 --connect-rate 1000 --interval 1s --duration "$HOLD" --json 2>/dev/null)
  local c1; c1=$(cpu_ticks $spid)
  kill $spid; wait $spid 2>/dev/null || true
  python3 -c "import json,sys; j=json.loads(sys.argv[1]); r=j['heartbeats']['received']; print(round(($c1-$c0)/$HZ/max(r,1)*1e6, 2), r)" "$json"
}
read -r plain plain_n < <(hb "")
read -r clustered clustered_n < <(hb "--cluster redis://127.0.0.1:$RPORT --node-id hb")

python3 - "$churn" "$(( a1 - a0 ))" "$(( b1 - b0 ))" "$(( r1 - r0 ))" "$HZ" "$SECS" "$plain" "$plain_n" "$clustered" "$clustered_n" <<'PY' | tee target/bench/cluster.json
import json, sys
c = json.loads(sys.argv[1])
a, b, r, hz, secs = (int(x) for x in sys.argv[2:7])
upd = c["presence_updates_per_s"] * secs / 2
out = dict(c)
out["node_cpu_us_per_update"] = round((a + b) / hz / max(upd, 1) * 1e6, 1)
out["redis_cpu_us_per_update"] = round(r / hz / max(upd, 1) * 1e6, 1)
out["heartbeat_cpu_s_per_million_plain"] = float(sys.argv[7])
out["heartbeat_cpu_s_per_million_cluster"] = float(sys.argv[9])
out["heartbeats_plain"] = int(sys.argv[8])
out["heartbeats_cluster"] = int(sys.argv[10])
print(json.dumps(out))
PY
python3 - <<'PY' >&2
import json
j = json.load(open("target/bench/cluster.json"))
for k, v in j.items():
    print(f"{k:40} {v}")
PY
