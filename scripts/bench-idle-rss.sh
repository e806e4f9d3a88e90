#!/usr/bin/env bash
# Server memory per idle connection: vigil serve (release) with CONNS idle
# connections held by a separate process, once bare and once after HELLO.
# Reports the server's RSS delta per connection (user space) and the
# machine's MemAvailable delta per connection (kernel sockets of both ends
# included). Writes target/bench/idle-rss.json.
#
# Usage: scripts/bench-idle-rss.sh [CONNS]   (default 15000; at most ~19,900
# because one process may hold 20,000 descriptors here)
# Environment: VIGIL_BIN=PATH runs that binary and builds nothing (to set
# two builds side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-15000}
if [ -n "${VIGIL_BIN:-}" ]; then BIN=$VIGIL_BIN; else cargo build --release --quiet; BIN=target/release/vigil; fi
mkdir -p target/bench

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
avail_kib() { awk '/^MemAvailable/ {print $2}' /proc/meminfo; }

measure() { # $1: label, $2: extra client flag
  local log port srv cli_out
  log=$(mktemp)
  RUST_LOG=warn,vigil::server=info "$BIN" serve --listen 127.0.0.1:0 --stats-interval 0ms \
    --timeout 10m --interval 5m 2>"$log" &
  srv=$!
  for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
  port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | head -1 | awk -F: '{print $NF}')
  sleep 0.2
  local rss0 avail0 rss1 avail1
  rss0=$(rss_kib $srv); avail0=$(avail_kib)
  coproc CLIENTS { ulimit -n "$(ulimit -Hn)"; exec python3 scripts/idle_clients.py "127.0.0.1:$port" "$CONNS" $2; }
  read -r -u "${CLIENTS[0]}" cli_out
  sleep 1
  rss1=$(rss_kib $srv); avail1=$(avail_kib)
  exec {CLIENTS[1]}>&-
  wait "$CLIENTS_PID" 2>/dev/null || true
  kill -TERM $srv; wait $srv 2>/dev/null || true
  rm -f "$log"
  local opened failed
  opened=$(echo "$cli_out" | awk '{print $2}'); failed=$(echo "$cli_out" | awk '{print $3}')
  python3 - "$1" "$opened" "$failed" "$rss0" "$rss1" "$avail0" "$avail1" <<'PY'
import json, sys
label, opened, failed, rss0, rss1, a0, a1 = sys.argv[1], *map(int, sys.argv[2:])
r = {"case": label, "conns": opened, "failed": failed,
     "server_rss_kib_before": rss0, "server_rss_kib_after": rss1,
     "server_bytes_per_conn": round((rss1 - rss0) * 1024 / max(opened, 1), 1),
     "machine_bytes_per_conn": round((a0 - a1) * 1024 / max(opened, 1), 1)}
print(json.dumps(r))
PY
}

{
  measure bare ""
  measure hello "--hello"
} | tee target/bench/idle-rss.jsonl
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("target/bench/idle-rss.jsonl")]
json.dump(rows, open("target/bench/idle-rss.json", "w"), indent=1)
print()
print(f"{'case':<8}{'conns':>8}{'failed':>8}{'server RSS/conn':>18}{'machine/conn':>15}")
for r in rows:
    print(f"{r['case']:<8}{r['conns']:>8}{r['failed']:>8}{r['server_bytes_per_conn']:>16.0f} B{r['machine_bytes_per_conn']:>13.0f} B")
PY
rm -f target/bench/idle-rss.jsonl
