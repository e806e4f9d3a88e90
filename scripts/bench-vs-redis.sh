#!/usr/bin/env bash
# redis-benchmark PING_INLINE and PING_MBULK against `vigil serve --protocol
# resp` and against redis-server, in the same run, alternating, three rounds
# each, at -c 50, -c 50 -P 16 and -c 1000. Prints the median requests/s of
# each and the ratio vigil/redis, and the server CPU time per request (user +
# system, from /proc/PID/stat) of each; writes target/bench/vs-redis.json.
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
VPID=$!; pids+=($VPID)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
  --maxclients 10000 --loglevel warning --daemonize no >/dev/null &
RPID=$!; pids+=($RPID)
# CPU time (utime + stime, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
for port in "$VPORT" "$RPORT"; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done

RAW=target/bench/vs-redis.raw
: > "$RAW"
configs=("-c 50 -n 200000" "-c 50 -P 16 -n 2000000" "-c 1000 -n 200000")
for round in $(seq "$ROUNDS"); do
  for cfg in "${configs[@]}"; do
    for server in vigil redis; do
      port=$VPORT; pid=$VPID
      [ "$server" = redis ] && port=$RPORT && pid=$RPID
      for test in ping_inline ping_mbulk; do
        before=$(cpu_ticks "$pid")
        # shellcheck disable=SC2086
        line=$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" $cfg --csv 2>/dev/null \
          | awk -F'"' '/^"PING/ {printf "%s\t%s", $2, $4}')
        after=$(cpu_ticks "$pid")
        n=$(echo "$cfg" | awk '{for (i = 1; i < NF; i++) if ($i == "-n") print $(i + 1)}')
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$cfg" "$line" \
          "$(awk -v t=$((after - before)) -v hz="$TCK" -v n="$n" 'BEGIN {printf "%.3f", t / hz * 1e6 / n}')" >> "$RAW"
      done
    done
  done
done

python3 - "$RAW" <<'PY'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
med, cpu = {}, {}
for r, server, cfg, test, rps, us in rows:
    med.setdefault((cfg, test), {}).setdefault(server, []).append(float(rps))
    cpu.setdefault((cfg, test), {}).setdefault(server, []).append(float(us))
out = []
print(f"{'redis-benchmark':<26}{'test':<13}{'vigil rps':>11}{'redis rps':>11}{'vigil/redis':>12}"
      f"{'vigil CPU/req':>15}{'redis CPU/req':>15}")
for (cfg, test), by in med.items():
    v, r = statistics.median(by["vigil"]), statistics.median(by["redis"])
    cv, cr = statistics.median(cpu[(cfg, test)]["vigil"]), statistics.median(cpu[(cfg, test)]["redis"])
    print(f"{cfg:<26}{test:<13}{v:>11.0f}{r:>11.0f}{v / r:>12.2f}{cv:>12.2f} us{cr:>12.2f} us")
    out.append({"config": cfg, "test": test, "vigil_rps": v, "redis_rps": r,
                "ratio": round(v / r, 3), "vigil_cpu_us_per_req": cv,
                "redis_cpu_us_per_req": cr, "rounds": len(by["vigil"])})
json.dump(out, open("target/bench/vs-redis.json", "w"), indent=1)
PY
