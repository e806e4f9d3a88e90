#!/usr/bin/env bash
# Plain TCP against TLS, side by side in one run: a release `vigil serve`
# (with and without --tls-cert/--tls-key) holding CONNS connections opened
# by `vigil load` (with and without --tls), twice per transport:
#   idle  - connections that beat once every 30 s (idle 99.9% of the time;
#           `vigil load` spreads its starts over one interval, so a longer
#           one would make the ramp as long): the server's RSS growth per
#           connection, all of its user space;
#   beat  - connections beating every second for HOLD: the server's RSS per
#           connection and its CPU-seconds (utime + stime) per million
#           heartbeats answered during the hold.
# The server logs at warn (vigil::server at info). Certificates are made
# for the run by scripts/gen-test-certs.sh. Writes target/bench/tls.json.
#
# Usage: scripts/bench-tls.sh [CONNS]   (default 15000)
# Environment: HOLD (default 20s), RATE (connects per second, default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-15000}
HOLD=${HOLD:-20s}
RATE=${RATE:-1000}
case "$HOLD" in *s) HOLD_S=${HOLD%s} ;; *) echo "HOLD must be in whole seconds, e.g. 20s" >&2; exit 2 ;; esac
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NSRC=$(( (CONNS + 1999) / 2000 )); [ "$NSRC" -gt 250 ] && NSRC=250
SOURCES="127.0.0.2-127.0.0.$(( NSRC + 1 ))"

cargo build --release --quiet
mkdir -p target/bench
BIN=target/release/vigil
HZ=$(getconf CLK_TCK)
tmp=$(mktemp -d)
bash scripts/gen-test-certs.sh "$tmp/certs"

SRV_PID=""; LOAD_PID=""
cleanup() {
  # Only what this script started, by PID.
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
time_wait() { awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "tw") print $(i + 1)}' /proc/net/sockstat; }
wait_for() { # $1: file, $2: text, $3: tenths of a second
  local i
  for i in $(seq "$3"); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

run() { # $1: plain|tls, $2: idle|beat
  local mode=$1 phase=$2 srv_tls=() load_tls=() interval=1s timeout=5s
  if [ "$mode" = tls ]; then
    srv_tls=(--tls-cert "$tmp/certs/cert.pem" --tls-key "$tmp/certs/key.pem")
    load_tls=(--tls --ca "$tmp/certs/ca.pem")
  fi
  [ "$phase" = idle ] && { interval=30s; timeout=60s; }
  for _ in $(seq 70); do [ "$(time_wait)" -lt 1000 ] && break; sleep 1; done
  RUST_LOG=warn,vigil::server=info "$BIN" serve --listen 127.0.0.1:0 --interval "$interval" \
    --timeout "$timeout" --stats-interval 0ms "${srv_tls[@]}" 2>"$tmp/serve.log" &
  SRV_PID=$!
  wait_for "$tmp/serve.log" "listening on" 100
  local port; port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$tmp/serve.log" | head -1 | awk -F: '{print $NF}')
  sleep 0.5
  local rss0 rss1 cpu0 cpu1
  rss0=$(rss_kib $SRV_PID)
  echo "$mode/$phase: $CONNS connections at $RATE/s, interval $interval, hold $HOLD" >&2
  "$BIN" load --server "127.0.0.1:$port" "${load_tls[@]}" --conns "$CONNS" --connect-rate "$RATE" \
    --interval "$interval" --duration "$HOLD" --timeout 10s --source-ips "$SOURCES" --json \
    >"$tmp/$mode-$phase.json" 2>"$tmp/load.log" &
  LOAD_PID=$!
  wait_for "$tmp/load.log" "holding:" $(( (CONNS / RATE + 70) * 10 ))
  cpu0=$(cpu_ticks $SRV_PID)
  sleep $(( HOLD_S > 4 ? HOLD_S - 2 : HOLD_S / 2 ))
  rss1=$(rss_kib $SRV_PID)
  wait_for "$tmp/load.log" "hold over:" 100
  cpu1=$(cpu_ticks $SRV_PID)
  wait $LOAD_PID; LOAD_PID=""
  kill -TERM $SRV_PID; wait $SRV_PID || true; SRV_PID=""
  echo "$mode $phase $rss0 $rss1 $cpu0 $cpu1" >>"$tmp/figures"
}

for phase in idle beat; do
  for mode in plain tls; do run $mode $phase; done
done

python3 - "$tmp" "$CONNS" "$HZ" <<'PY'
import json, sys
tmp, conns, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows, out = [], {}
for line in open(f"{tmp}/figures"):
    mode, phase, rss0, rss1, cpu0, cpu1 = line.split()
    load = json.load(open(f"{tmp}/{mode}-{phase}.json"))
    online = load["connections"]["online_at_end"]
    hb = load["heartbeats"]["hold_received"]
    cpu = (int(cpu1) - int(cpu0)) / hz
    r = {
        "online_at_end": online, "errors": load["errors"],
        "server_bytes_per_conn": round((int(rss1) - int(rss0)) * 1024 / max(online, 1), 1),
        "hold_heartbeats": hb, "server_cpu_s": round(cpu, 2),
        "server_cpu_s_per_million_heartbeats": round(cpu / hb * 1e6, 2) if hb else None,
    }
    out[f"{mode}-{phase}"] = r
    rows.append((mode, phase, r))
json.dump(out, open("target/bench/tls.json", "w"), indent=1)
print(f"{'transport':<10}{'phase':<7}{'online':>8}{'errors':>8}{'RSS / conn':>12}{'heartbeats':>12}{'CPU-s / M beats':>17}")
for mode, phase, r in rows:
    cpu = r["server_cpu_s_per_million_heartbeats"]
    print(f"{mode:<10}{phase:<7}{r['online_at_end']:>8,}{r['errors']:>8}{r['server_bytes_per_conn']:>10.0f} B"
          f"{r['hold_heartbeats']:>12,}{'-' if cpu is None else f'{cpu:.2f}':>17}")
sys.exit(0 if all(r["errors"] == 0 and r["online_at_end"] == conns for _, _, r in rows) else 1)
PY
