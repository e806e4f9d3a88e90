#!/usr/bin/env bash
# One worker against two, side by side in one run: scripts/bench-heartbeats.sh
# with WORKERS=1, then WORKERS=2 (the same search, the same machine, minutes
# apart), and a table of what each sustained, the server's CPU per
# heartbeat at 90 % of that, and its CPU per connection opened. With two
# workers a HELLO lands on the worker that owns its id half the time and is
# handed over the other half, so the hand-off's cost is about twice the
# difference in CPU per connection.
#
# Both servers and the one load generator share this machine's two cores:
# with two workers the server may use both, which the load generator needs
# too, so the sustained rate says what the pair manages here, not what two
# workers give on a machine with cores to spare.
#
# Usage: scripts/bench-workers.sh     Environment: HOLD, FINAL_HOLD (as bench-heartbeats.sh)
# The searches give each its own rate (90 % of what it sustained), where one
# worker batches more heartbeats per wake-up than either of two does; the
# same-rate rounds after them (SAME_RATE, see bench-heartbeats.sh) compare
# the two at equal load.
#
# Writes target/bench/heartbeats.json, heartbeats-w2.json, workers.json and
# workers-same-rate.json.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=1 bash scripts/bench-heartbeats.sh
WORKERS=2 bash scripts/bench-heartbeats.sh
# Then both at the same offered rates, alternating: a light load (every
# loop wakes for about one heartbeat), and two where one loop batches.
SAME_RATE=${SAME_RATE:-"10000@2000 10000@10000 1000@20000"} bash scripts/bench-heartbeats.sh
python3 - <<'PY'
import json
runs = {w: json.load(open(f)) for w, f in
        ((1, "target/bench/heartbeats.json"), (2, "target/bench/heartbeats-w2.json"))}
out = {"by_conns": []}
print("\nworkers  conns  sustained/s  srv CPU µs/heartbeat (at 90 %)  srv CPU µs/connect (median)")
for i, conns in enumerate((1_000, 10_000)):
    entry = {"conns": conns}
    for w, run in runs.items():
        e = run["by_conns"][i]
        top = e.get("max_sustained_per_s")
        at90 = e.get("at_90pct", {})
        per_hb = None
        if at90.get("server_cpu_pct") and at90["heartbeats"]["replies_per_s"]:
            per_hb = round(1e6 * at90["server_cpu_pct"] / 100 / at90["heartbeats"]["replies_per_s"], 2)
        connects = sorted(r["server_cpu_per_connect_us"] for r in e["search"]
                          if "server_cpu_per_connect_us" in r)
        per_conn = connects[len(connects) // 2] if connects else None
        entry[f"w{w}"] = {"max_sustained_per_s": top, "server_cpu_us_per_heartbeat": per_hb,
                          "server_cpu_us_per_connect": per_conn}
        print(f"{w:>7} {conns:>6,} {top or 0:>12,.0f} {per_hb or 0:>31} {per_conn or 0:>28}")
    a, b = entry["w1"]["server_cpu_us_per_connect"], entry["w2"]["server_cpu_us_per_connect"]
    if a is not None and b is not None:
        entry["handoff_us_estimate"] = round(2 * (b - a), 1)
        print(f"        hand-off per crossing HELLO, about 2 × ({b} − {a}) = {2 * (b - a):.1f} µs")
    out["by_conns"].append(entry)
json.dump(out, open("target/bench/workers.json", "w"), indent=1)
print(json.dumps(out))
PY
