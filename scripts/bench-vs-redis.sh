#!/usr/bin/env bash
# redis-benchmark PING_INLINE and PING_MBULK against `vigil serve --protocol
# resp` and against redis-server, in the same run, alternating, three rounds
# each, at -c 50, -c 50 -P 16 and -c 1000. Prints the median requests/s of
# each and the ratio vigil/redis; writes target/bench/vs-redis.json.
#
# Usage: scripts/bench-vs-redis.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
bash scripts/install-deps.sh
cargo build --release --quiet
mkdir -p target/bench
ulimit -n "$(ulimit -Hn)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
VPORT=$(free_port); RPORT=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

RUST_LOG=warn target/release/vigil serve --protocol resp --listen "127.0.0.1:$VPORT" \
  --stats-interval 0ms --timeout 10m --interval 5m &
pids+=($!)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
  --maxclients 10000 --loglevel warning --daemonize no >/dev/null &
pids+=($!)
for port in "$VPORT" "$RPORT"; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done

RAW=target/bench/vs-redis.raw
: > "$RAW"
configs=("-c 50 -n 200000" "-c 50 -P 16 -n 2000000" "-c 1000 -n 200000")
for round in $(seq "$ROUNDS"); do
  for cfg in "${configs[@]}"; do
    for server in vigil redis; do
      port=$VPORT; [ "$server" = redis ] && port=$RPORT
      # shellcheck disable=SC2086
      redis-benchmark -h 127.0.0.1 -p "$port" -t ping_inline,ping_mbulk $cfg --csv 2>/dev/null \
        | awk -F'"' -v s="$server" -v c="$cfg" -v r="$round" \
            '/^"PING/ {printf "%s\t%s\t%s\t%s\t%s\n", r, s, c, $2, $4}' >> "$RAW"
    done
  done
done

python3 - "$RAW" <<'PY'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
med = {}
for r, server, cfg, test, rps in rows:
    med.setdefault((cfg, test), {}).setdefault(server, []).append(float(rps))
out = []
print(f"{'redis-benchmark':<28}{'test':<13}{'vigil rps':>12}{'redis rps':>12}{'vigil/redis':>13}")
for (cfg, test), by in med.items():
    v, r = statistics.median(by["vigil"]), statistics.median(by["redis"])
    cfg_short = " ".join(w for w in cfg.split() if True)
    print(f"{cfg_short:<28}{test:<13}{v:>12.0f}{r:>12.0f}{v / r:>13.2f}")
    out.append({"config": cfg, "test": test, "vigil_rps": v, "redis_rps": r,
                "ratio": round(v / r, 3), "rounds": len(by["vigil"])})
json.dump(out, open("target/bench/vs-redis.json", "w"), indent=1)
PY
