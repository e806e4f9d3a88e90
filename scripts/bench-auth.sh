#!/usr/bin/env bash
# Plain against authenticated connections, side by side in one run:
# scripts/bench-capacity.sh twice with the same CONNS, HOLD and RATE, the
# second time with AUTH=1 (`vigil serve --auth-secret`, every session
# sending `HELLO <id> <token>`). Prints server CPU-seconds per million
# heartbeats and server bytes per connection for both.
#
# Usage: scripts/bench-auth.sh [CONNS]   (default 15000; HOLD, RATE as bench-capacity.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-15000}
echo "== plain ==" >&2
bash scripts/bench-capacity.sh "$CONNS"
echo "== authenticated ==" >&2
AUTH=1 bash scripts/bench-capacity.sh "$CONNS"
python3 - <<'PY'
import json
p = json.load(open("target/bench/capacity.json"))
a = json.load(open("target/bench/capacity-auth.json"))
rows = [
    ("conns held", "online_at_end", "{:,}"),
    ("heartbeats answered in the hold", "hold_heartbeats", "{:,}"),
    ("server RSS / conn (B)", "server_bytes_per_conn", "{:.0f}"),
    ("server CPU-s / million heartbeats", "server_cpu_s_per_million_heartbeats", "{}"),
    ("RTT p99 (µs)", None, "{}"),
]
print(f"{'':<38}{'plain':>14}{'authenticated':>16}")
for name, key, fmt in rows:
    if key is None:
        pv, av = p["latency_us"]["rtt"]["p99"], a["latency_us"]["rtt"]["p99"]
    else:
        pv, av = p[key], a[key]
    print(f"{name:<38}{fmt.format(pv):>14}{fmt.format(av):>16}")
PY
