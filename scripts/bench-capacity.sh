#!/usr/bin/env bash
# Capacity: a release `vigil serve` holding CONNS connections that beat
# every second, opened by `vigil load` and held for HOLD (default 30s).
#
# Reports, over the hold: the server's RSS growth per connection (its user
# space), the machine's MemAvailable drop per connection (kernel sockets of
# both ends, plus the load generator), the server's CPU-seconds per million
# heartbeats (utime + stime from /proc/PID/stat, between the start and the
# end of the hold, divided by the replies received during the hold), and
# the errors (connect errors, closes, missing replies), which must be zero.
# Writes target/bench/capacity.json, and target/bench/capacity.svg (`vigil
# load --plot`: latency curves, sessions online and heartbeats/s over the
# run); exits 1 if there were errors.
#
# Usage: scripts/bench-capacity.sh [CONNS]   (default 15000)
# Environment: HOLD (default 30s), RATE (connects per second, default 2000),
# AUTH=1 (the server runs with --auth-secret and every session sends a
# token it minted; the report goes to target/bench/capacity-auth.json).
# scripts/bench-auth.sh runs both and prints them side by side.
# PROTOCOL=NAME (the server listens on NAME://127.0.0.1:0, e.g. ws:// for
# WebSocket, and `vigil load --protocol NAME` speaks it; the report and the
# plot go to target/bench/capacity[-auth]-NAME.json and .svg; unset: a
# plain `--listen 127.0.0.1:0` and the line protocol, as before).
# VIGIL_BIN=PATH (run that binary and build nothing: keeps one binary for
# all the runs of a comparison while src/ changes; unset: cargo build
# --release and target/release/vigil). scripts/bench-ws.sh uses both.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-15000}
HOLD=${HOLD:-30s}
RATE=${RATE:-2000}
case "$HOLD" in *s) HOLD_S=${HOLD%s} ;; *) echo "HOLD must be in whole seconds, e.g. 30s" >&2; exit 2 ;; esac
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# One load process holds at most its open-files limit less 10 sockets.
PER_PROC=$(( $(ulimit -n) - 10 ))
PROCS=$(( (CONNS + PER_PROC - 1) / PER_PROC ))
# At most 2,000 connections per source address: with one address, connect()
# searches an ever fuller ephemeral port range and stalls the generator.
NSRC=$(( (CONNS + 1999) / 2000 )); [ "$NSRC" -gt 250 ] && NSRC=250
SOURCES="127.0.0.2-127.0.0.$(( NSRC + 1 ))"

if [ -n "${VIGIL_BIN:-}" ]; then BIN=$VIGIL_BIN; else cargo build --release --quiet; BIN=target/release/vigil; fi
mkdir -p target/bench
HZ=$(getconf CLK_TCK)

SRV_PID=""; LOAD_PID=""
tmp=$(mktemp -d)
cleanup() {
  # Only what this script started, by PID.
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
avail_kib() { awk '/^MemAvailable/ {print $2}' /proc/meminfo; }
slab_kib() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
time_wait() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "tw") print $(i + 1)}' /proc/net/sockstat; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# A process and its direct children (the load workers, with --procs > 1).
tree() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }
tree_cpu() { local t=0 p; for p in $(tree "$1"); do t=$(( t + $(cpu_ticks "$p" 2>/dev/null || echo 0) )); done; echo $t; }
tree_rss() { local t=0 p; for p in $(tree "$1"); do t=$(( t + $(rss_kib "$p" 2>/dev/null || echo 0) )); done; echo $t; }
wait_for() { # $1: file, $2: text, $3: tenths of a second
  local i
  for i in $(seq "$3"); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

AUTH_ARGS=(); OUT=target/bench/capacity.json; PLOT=target/bench/capacity.svg
if [ "${AUTH:-0}" = 1 ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/secret"
  AUTH_ARGS=(--auth-secret "$tmp/secret"); OUT=target/bench/capacity-auth.json
fi
LISTEN=127.0.0.1:0; PROTO_ARGS=()
if [ -n "${PROTOCOL:-}" ]; then
  LISTEN="$PROTOCOL://127.0.0.1:0"; PROTO_ARGS=(--protocol "$PROTOCOL")
  OUT=${OUT%.json}-$PROTOCOL.json; PLOT=${PLOT%.svg}${AUTH_ARGS:+-auth}-$PROTOCOL.svg
fi
RUST_LOG=warn,vigil::server=info "$BIN" serve --listen "$LISTEN" --interval 1s --timeout 5s \
  --stats-interval 0ms "${AUTH_ARGS[@]}" 2>"$tmp/serve.log" &
SRV_PID=$!
wait_for "$tmp/serve.log" "listening on" 100
PORT=$(grep -o 'listening on [a-z]*:*/*[0-9.]*:[0-9]*' "$tmp/serve.log" | head -1 | awk -F: '{print $NF}')
sleep 0.5
# TIME_WAIT sockets left by earlier runs expire (60 s) and free memory
# while we measure: wait for them to go first (bounded).
for _ in $(seq 70); do [ "$(time_wait)" -lt 1000 ] && break; echo "waiting for $(time_wait) TIME_WAIT sockets to expire" >&2; sleep 1; done
rss0=$(rss_kib $SRV_PID); avail0=$(avail_kib); slab0=$(slab_kib); tw0=$(time_wait)
cat /proc/slabinfo >"$tmp/slab0" 2>/dev/null || true

echo "vigil load: $CONNS connections at $RATE/s from $SOURCES, 1 s heartbeats, hold $HOLD, $PROCS process(es), to $LISTEN" >&2
"$BIN" load --server "127.0.0.1:$PORT" --conns "$CONNS" --connect-rate "$RATE" --interval 1s \
  --duration "$HOLD" --timeout 10s --procs "$PROCS" --source-ips "$SOURCES" --json "${AUTH_ARGS[@]}" \
  "${PROTO_ARGS[@]}" --plot "$PLOT" >"$tmp/load.json" 2>"$tmp/load.log" &
LOAD_PID=$!
ramp_limit=$(( (CONNS / RATE + 30) * 10 ))
wait_for "$tmp/load.log" "holding:" "$ramp_limit"
cpu0=$(cpu_ticks $SRV_PID); lcpu0=$(tree_cpu $LOAD_PID); t0=$(date +%s.%N)
# Memory two seconds before the hold ends, while everything is held.
sleep $(( HOLD_S > 4 ? HOLD_S - 2 : HOLD_S / 2 ))
rss1=$(rss_kib $SRV_PID); avail1=$(avail_kib); slab1=$(slab_kib); lrss=$(tree_rss $LOAD_PID)
cat /proc/slabinfo >"$tmp/slab1" 2>/dev/null || true
wait_for "$tmp/load.log" "hold over:" 100
cpu1=$(cpu_ticks $SRV_PID); lcpu1=$(tree_cpu $LOAD_PID); t1=$(date +%s.%N)
wait $LOAD_PID; LOAD_PID=""
kill -TERM $SRV_PID; wait $SRV_PID || true; SRV_PID=""

python3 - "$tmp/load.json" "$CONNS" "$PROCS" "$HZ" "$rss0" "$rss1" "$avail0" "$avail1" "$lrss" \
  "$cpu0" "$cpu1" "$lcpu0" "$lcpu1" "$slab0" "$slab1" "$tw0" "$t0" "$t1" "$SOURCES" "$OUT" \
  "${PROTOCOL:-line}" <<'PY'
import json, sys
load = json.load(open(sys.argv[1]))
conns, procs, hz, rss0, rss1, a0, a1, lrss, c0, c1, l0, l1, s0, s1, tw0 = map(int, sys.argv[2:17])
t0, t1 = map(float, sys.argv[17:19])
sources = sys.argv[19]
out = sys.argv[20]
protocol = sys.argv[21]
tmp = sys.argv[1].rsplit("/", 1)[0]

def slabs(path):
    """Bytes held by each slab cache: num_objs x objsize."""
    try:
        rows = [l.split() for l in open(path) if not l.startswith(("slabinfo", "#"))]
        return {r[0]: int(r[2]) * int(r[3]) for r in rows}
    except OSError:
        return {}

b0, b1 = slabs(f"{tmp}/slab0"), slabs(f"{tmp}/slab1")
grown = sorted(((b1.get(k, 0) - b0.get(k, 0), k) for k in b1), reverse=True)[:6]
hb = load["heartbeats"]
online = load["connections"]["online_at_end"]
wall = t1 - t0
srv_cpu = (c1 - c0) / hz
gen_cpu = (l1 - l0) / hz
r = {
    "protocol": protocol, "conns": conns, "online_at_end": online, "procs": procs, "source_ips": sources,
    "hold_s": round(load["hold_ms"] / 1000, 2),
    "hold_heartbeats": hb["hold_received"],
    "heartbeats_per_s": hb["replies_per_s"],
    "server_rss_kib_before": rss0, "server_rss_kib_held": rss1,
    "server_bytes_per_conn": round((rss1 - rss0) * 1024 / max(online, 1), 1),
    "machine_bytes_per_conn": round((a0 - a1) * 1024 / max(online, 1), 1),
    "loadgen_rss_kib": lrss,
    "kernel_slab_bytes_per_conn": round((s1 - s0) * 1024 / max(online, 1), 1),
    "time_wait_sockets_before": tw0,
    "slab_caches_grown_bytes_per_conn":
        {k: round(d / max(online, 1), 1) for d, k in grown if d > 0},
    "server_cpu_s": round(srv_cpu, 2), "server_cpu_pct": round(100 * srv_cpu / wall, 1),
    "loadgen_cpu_s": round(gen_cpu, 2), "loadgen_cpu_pct": round(100 * gen_cpu / wall, 1),
    "server_cpu_s_per_million_heartbeats": round(srv_cpu / max(hb["hold_received"], 1) * 1e6, 2),
    "errors": load["errors"], "connect_errors": load["connect_errors"],
    "closes": load["closes"], "missing": hb["missing"],
    "latency_us": load["latency_us"], "load": load,
}
json.dump(r, open(out, "w"), indent=1)
s, t = load["latency_us"]["scheduled"], load["latency_us"]["rtt"]
print(f"{'conns held':<40}{online:>12,}")
print(f"{'hold':<40}{r['hold_s']:>11} s")
print(f"{'heartbeats answered in the hold':<40}{hb['hold_received']:>12,}  ({hb['replies_per_s']:,.0f}/s)")
print(f"{'server RSS / conn':<40}{r['server_bytes_per_conn']:>10.0f} B")
print(f"{'machine (MemAvailable) / conn':<40}{r['machine_bytes_per_conn']:>10.0f} B")
print(f"{'kernel slab (/proc/meminfo Slab) / conn':<40}{r['kernel_slab_bytes_per_conn']:>10.0f} B")
for d, k in grown:
    if d > 0:
        print(f"{'  ' + k:<40}{d / max(online, 1):>10.0f} B")
print(f"{'load generator RSS':<40}{lrss / 1024:>9.1f} MiB")
print(f"{'server CPU in the hold':<40}{srv_cpu:>10.2f} s  ({r['server_cpu_pct']} % of a core)")
print(f"{'server CPU-s / million heartbeats':<40}{r['server_cpu_s_per_million_heartbeats']:>12}")
print(f"{'load generator CPU in the hold':<40}{gen_cpu:>10.2f} s  ({r['loadgen_cpu_pct']} % of a core)")
print(f"{'RTT p50 / p99 / p99.9 / max (µs)':<40}{t['p50']} / {t['p99']} / {t['p99_9']} / {t['max']}")
print(f"{'from schedule p50 / p99 / p99.9 / max':<40}{s['p50']} / {s['p99']} / {s['p99_9']} / {s['max']}")
print(f"{'errors (connect, closes, missing)':<40}{load['connect_errors']['total']}, {load['closes']['total']}, {hb['missing']}")
sys.exit(0 if load["errors"] == 0 and online == conns else 1)
PY
