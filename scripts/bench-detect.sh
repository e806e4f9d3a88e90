#!/usr/bin/env bash
# Dead-client detection: 1,000 clients say HELLO, get WELCOME, then go
# silent (scripts/silent_clients.py); how long after each one's last byte
# does a release `vigil serve` close it, against the configured --timeout
# and --tick? The server's rule: a deadline fires at the first tick
# boundary at or after it, so the close should come in
# [timeout, timeout + tick), plus the loop's own latency.
#
# Two views of the same closes:
# - client side: from just after HELLO was written to the end of stream
#   seen by the client (monotonic clock, µs; includes loopback delivery
#   and the Python loop's reaction time);
# - server side: from the `hello` event to the `offline` event in the
#   server's --events file (the server's clock, ms resolution).
#
# Runs once per tick in TICKS (default "100ms 10ms") with TIMEOUT (2s);
# writes target/bench/detect.json.
#
# Usage: scripts/bench-detect.sh    Environment: CLIENTS (1000), TIMEOUT, TICKS
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-1000}
TIMEOUT=${TIMEOUT:-2s}
TICKS=${TICKS:-100ms 10ms}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --quiet
mkdir -p target/bench
BIN=target/release/vigil

SRV_PID=""
tmp=$(mktemp -d)
cleanup() {
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

for tick in $TICKS; do
  events="$tmp/events-$tick.jsonl"
  RUST_LOG=warn,vigil::server=info "$BIN" serve --listen 127.0.0.1:0 --timeout "$TIMEOUT" \
    --interval 1s --tick "$tick" --stats-interval 0ms --events "$events" 2>"$tmp/serve.log" &
  SRV_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.05; done
  port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$tmp/serve.log" | head -1 | awk -F: '{print $NF}')
  # HELLOs spread over one second; everything is over well within 20 s.
  python3 scripts/silent_clients.py "127.0.0.1:$port" "$CLIENTS" 1000 20 >"$tmp/clients-$tick.json"
  kill -TERM "$SRV_PID"; wait "$SRV_PID" || true; SRV_PID=""
  python3 - "$tick" "$TIMEOUT" "$tmp/clients-$tick.json" "$events" >>"$tmp/rows.jsonl" <<'PY'
import json, sys
from datetime import datetime

def ms(d):
    return int(d[:-2]) if d.endswith("ms") else int(d[:-1]) * 1000

tick, timeout = sys.argv[1], sys.argv[2]
c = json.load(open(sys.argv[3]))
client = sorted((e - s) * 1000 for s, e in zip(c["sent"], c["eof"]) if e is not None)
byes = {}
for b in c["bye"]:
    byes[b or "(none)"] = byes.get(b or "(none)", 0) + 1
t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
hello, offline, reasons = {}, {}, {}
for line in open(sys.argv[4]):
    e = json.loads(line)
    if e["event"] == "hello":
        hello[e["conn"]] = t(e["time"])
    elif e["event"] == "offline":
        offline[e["conn"]] = t(e["time"])
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
server = sorted(offline[k] - hello[k] for k in hello if k in offline)

def stats(v):
    if not v:
        return None
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return {"n": len(v), "min": round(v[0], 2), "p50": round(q(0.5), 2),
            "p99": round(q(0.99), 2), "max": round(v[-1], 2)}

print(json.dumps({"tick_ms": ms(tick), "timeout_ms": ms(timeout), "clients": len(c["ids"]),
                  "failed": c["failed"], "never_closed": sum(e is None for e in c["eof"]),
                  "client_ms": stats(client), "server_ms": stats(server),
                  "client_saw": byes, "server_reasons": reasons}))
PY
done

python3 - "$tmp/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
json.dump(rows, open("target/bench/detect.json", "w"), indent=1)
print(f"{'timeout':>8}{'tick':>7}{'view':>8}{'n':>6}{'min':>10}{'p50':>10}{'p99':>10}{'max':>10}"
      f"{'expected':>20}")
for r in rows:
    lo, hi = r["timeout_ms"], r["timeout_ms"] + r["tick_ms"]
    for view in ("client", "server"):
        s = r[f"{view}_ms"]
        print(f"{lo:>6}ms{r['tick_ms']:>5}ms{view:>8}{s['n']:>6}{s['min']:>10.1f}{s['p50']:>10.1f}"
              f"{s['p99']:>10.1f}{s['max']:>10.1f}{f'[{lo}, {hi}) ms':>20}")
    print(f"{'':>21}client saw {r['client_saw']}; server reasons {r['server_reasons']}; "
          f"failed {r['failed']}, never closed {r['never_closed']}")
PY
