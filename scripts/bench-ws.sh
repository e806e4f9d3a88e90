#!/usr/bin/env bash
# WebSocket against the line protocol, side by side in one run, ROUNDS
# rounds of each (default 2), alternating line and WebSocket, each in a
# fresh release `vigil serve`:
#   idle - the server's RSS growth per connection with CONNS idle
#          connections held by a separate process
#          (scripts/idle_clients.py): line connections after HELLO and
#          WELCOME, against WebSocket connections after the upgrade (101)
#          and a HELLO text frame and its WELCOME frame. The server listens
#          on 127.0.0.1:0 or ws://127.0.0.1:0 with --interval 5m --timeout
#          10m, so it sends no WebSocket ping and expires nothing while it
#          is measured; as scripts/bench-idle-rss.sh, RSS is read before the
#          first connect and one second after the last WELCOME.
#   beat - scripts/bench-capacity.sh with PROTOCOL=line and PROTOCOL=ws:
#          CONNS connections by `vigil load [--protocol ws]`, one heartbeat
#          a second each (server --interval 1s --timeout 5s), held HOLD;
#          the server's CPU-seconds (utime + stime) per million heartbeats
#          answered in the hold, and its RSS per connection.
# One binary for the whole run: built once and copied, so that src/
# changing meanwhile does not mix builds. The servers log at
# RUST_LOG=warn,vigil::server=info (no per-connection line). Prints one
# table and one JSON line; writes target/bench/ws.json; exits 1 if any
# connection failed or any error was counted.
#
# Usage: scripts/bench-ws.sh [CONNS]   (default 15000; at most ~19,900:
# one process may hold 20,000 descriptors here)
# Environment: ROUNDS (default 2), HOLD (default 30s), RATE (connects per
# second for vigil load, default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-15000}
ROUNDS=${ROUNDS:-2}
export HOLD=${HOLD:-30s} RATE=${RATE:-2000}
LOG_LEVEL=warn,vigil::server=info

STARTED=$(date -u +%FT%TZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Files under src/ (and the manifests) that differed from COMMIT when it is built.
DIRTY=$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | awk '{print $NF}' | paste -sd, -)
cargo build --release --quiet
mkdir -p target/bench
tmp=$(mktemp -d)
BIN=$tmp/vigil
cp target/release/vigil "$BIN"

SRV_PID=""; CLI_PID=""
cleanup() {
  # Only what this script started, by PID.
  [ -n "$CLI_PID" ] && kill "$CLI_PID" 2>/dev/null || true
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
avail_kib() { awk '/^MemAvailable/ {print $2}' /proc/meminfo; }
wait_for() { # $1: file, $2: text, $3: tenths of a second
  local i
  for i in $(seq "$3"); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

idle() { # $1: line|ws, $2: round
  local proto=$1 round=$2 listen=127.0.0.1:0 ws="" log port cli_out rss0 avail0 rss1 avail1
  [ "$proto" = ws ] && { listen=ws://127.0.0.1:0; ws=--ws; }
  log=$tmp/idle-serve.log
  RUST_LOG=$LOG_LEVEL "$BIN" serve --listen "$listen" --stats-interval 0ms \
    --timeout 10m --interval 5m 2>"$log" &
  SRV_PID=$!
  wait_for "$log" "listening on" 100
  port=$(grep -o 'listening on [a-z]*:*/*[0-9.]*:[0-9]*' "$log" | head -1 | awk -F: '{print $NF}')
  sleep 0.2
  rss0=$(rss_kib $SRV_PID); avail0=$(avail_kib)
  echo "idle/$proto round $round: $CONNS connections to $listen" >&2
  coproc CLIENTS { ulimit -n "$(ulimit -Hn)"; exec python3 scripts/idle_clients.py "127.0.0.1:$port" "$CONNS" --hello $ws; }
  CLI_PID=$CLIENTS_PID
  read -r -u "${CLIENTS[0]}" cli_out || { echo "idle_clients.py did not report" >&2; exit 1; }
  sleep 1
  rss1=$(rss_kib $SRV_PID); avail1=$(avail_kib)
  exec {CLIENTS[1]}>&-
  wait "$CLI_PID" 2>/dev/null || true; CLI_PID=""
  kill -TERM $SRV_PID; wait $SRV_PID 2>/dev/null || true; SRV_PID=""
  echo "idle $proto $round $cli_out $rss0 $rss1 $avail0 $avail1" >>"$tmp/idle"
}

beat() { # $1: line|ws, $2: round
  local rc=0
  echo "beat/$1 round $2: scripts/bench-capacity.sh $CONNS with PROTOCOL=$1" >&2
  PROTOCOL=$1 VIGIL_BIN=$BIN bash scripts/bench-capacity.sh "$CONNS" >"$tmp/beat-$1-$2.txt" || rc=$?
  cat "$tmp/beat-$1-$2.txt" >&2
  cp "target/bench/capacity-$1.json" "$tmp/beat-$1-$2.json"
  echo "$1 $2 $rc" >>"$tmp/beat"
}

for round in $(seq "$ROUNDS"); do
  for proto in line ws; do idle $proto "$round"; done
done
for round in $(seq "$ROUNDS"); do
  for proto in line ws; do beat $proto "$round"; done
done

python3 - "$tmp" "$CONNS" "$COMMIT" "$DIRTY" "$LOG_LEVEL" "$HOLD" "$RATE" "$STARTED" <<'PY'
import json, sys
from statistics import mean
tmp, conns, commit, dirty, level, hold, rate, started = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
idle, beat = [], []
for line in open(f"{tmp}/idle"):
    _, proto, rnd, _, opened, failed, rss0, rss1, a0, a1 = line.split()
    opened, failed, rss0, rss1, a0, a1 = map(int, (opened, failed, rss0, rss1, a0, a1))
    idle.append({"protocol": proto, "round": int(rnd), "conns": opened, "failed": failed,
                 "server_rss_kib_before": rss0, "server_rss_kib_after": rss1,
                 "server_bytes_per_conn": round((rss1 - rss0) * 1024 / max(opened, 1), 1),
                 "machine_bytes_per_conn": round((a0 - a1) * 1024 / max(opened, 1), 1)})
for line in open(f"{tmp}/beat"):
    proto, rnd, rc = line.split()
    c = json.load(open(f"{tmp}/beat-{proto}-{rnd}.json"))
    beat.append({"protocol": proto, "round": int(rnd), "exit": int(rc),
                 "online_at_end": c["online_at_end"], "errors": c["errors"],
                 "connect_errors": c["connect_errors"]["total"], "closes": c["closes"]["total"],
                 "missing": c["missing"], "hold_s": c["hold_s"], "hold_heartbeats": c["hold_heartbeats"],
                 "server_bytes_per_conn": c["server_bytes_per_conn"],
                 "kernel_slab_bytes_per_conn": c["kernel_slab_bytes_per_conn"],
                 "server_cpu_s": c["server_cpu_s"], "server_cpu_pct": c["server_cpu_pct"],
                 "server_cpu_s_per_million_heartbeats": c["server_cpu_s_per_million_heartbeats"],
                 "rtt_us": {k: c["latency_us"]["rtt"][k] for k in ("p50", "p99", "p99_9", "max")}})

def ratio(rows, key):
    by = {p: [r[key] for r in rows if r["protocol"] == p] for p in ("line", "ws")}
    return round(mean(by["ws"]) / mean(by["line"]), 3) if by["ws"] and by["line"] and mean(by["line"]) else None

out = {"started": started, "conns": conns, "commit": commit, "modified_at_build": dirty.split(",") if dirty else [], "rust_log": level,
       "hold": hold, "connect_rate": int(rate), "idle": idle, "beat": beat,
       "ws_over_line": {"idle_server_bytes_per_conn": ratio(idle, "server_bytes_per_conn"),
                        "beat_server_bytes_per_conn": ratio(beat, "server_bytes_per_conn"),
                        "server_cpu_s_per_million_heartbeats":
                            ratio(beat, "server_cpu_s_per_million_heartbeats")}}
json.dump(out, open("target/bench/ws.json", "w"), indent=1)

print(f"{'phase':<6}{'protocol':<10}{'round':>6}{'conns':>8}{'failed/errors':>15}{'server RSS / conn':>19}"
      f"{'heartbeats':>12}{'CPU-s / M beats':>17}")
for r in idle:
    print(f"{'idle':<6}{r['protocol']:<10}{r['round']:>6}{r['conns']:>8,}{r['failed']:>15}"
          f"{r['server_bytes_per_conn']:>17.0f} B{'-':>12}{'-':>17}")
for r in beat:
    print(f"{'beat':<6}{r['protocol']:<10}{r['round']:>6}{r['online_at_end']:>8,}{r['errors']:>15}"
          f"{r['server_bytes_per_conn']:>17.0f} B{r['hold_heartbeats']:>12,}"
          f"{r['server_cpu_s_per_million_heartbeats']:>17.2f}")
w = out["ws_over_line"]
print(f"ws / line (means): idle RSS {w['idle_server_bytes_per_conn']}, beat RSS "
      f"{w['beat_server_bytes_per_conn']}, CPU per heartbeat {w['server_cpu_s_per_million_heartbeats']}")
print(json.dumps(out, separators=(",", ":")))
ok = all(r["failed"] == 0 and r["conns"] == conns for r in idle) and \
     all(r["errors"] == 0 and r["online_at_end"] == conns and r["exit"] == 0 for r in beat)
sys.exit(0 if ok else 1)
PY
