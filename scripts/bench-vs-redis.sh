#!/usr/bin/env bash
# redis-benchmark PING_INLINE and PING_MBULK against `vigil serve --protocol
# resp` and against redis-server, in the same run, alternating, three rounds
# each, at -c 50, -c 50 -P 16 and -c 1000. Prints the median requests/s of
# each and the ratio vigil/redis, and the server CPU time per request (user +
# system, from /proc/PID/stat) of each; writes target/bench/vs-redis.json.
#
# Then latency: `vigil load --protocol resp` (LCONNS connections, default
# 1000, a PING every 100 ms, for LHOLD, default 20s) against each server in
# turn; writes each run's plot (target/bench/vs-redis-{vigil,redis}.svg,
# `vigil load --plot`), its report (.json) and its distribution (.hgrm),
# and both percentile curves in one picture, target/bench/vs-redis-latency.svg.
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

# Latency curves: the same load generator against both servers.
LCONNS=${LCONNS:-1000}
LHOLD=${LHOLD:-20s}
for server in vigil redis; do
  port=$VPORT
  [ "$server" = redis ] && port=$RPORT
  RUST_LOG=warn target/release/vigil load --protocol resp --server "127.0.0.1:$port" \
    --conns "$LCONNS" --connect-rate 2000 --interval 100ms --duration "$LHOLD" --json \
    --hgrm "target/bench/vs-redis-$server.hgrm" --plot "target/bench/vs-redis-$server.svg" \
    > "target/bench/vs-redis-$server.json"
done
python3 - "$LCONNS" <<'PY'
import json, math, sys
# Both scheduled-send curves on HdrHistogram's axis: x = log10(1/(1-p)),
# 50 % to 99.999 %; y = latency in ms. Plain SVG, written by hand.
W, H, L, R, T, B = 900, 520, 70, 30, 50, 60
X0, X1 = math.log10(2), 5.0
curves, ymax = {}, 0.0
for server in ("vigil", "redis"):
    pts = []
    for line in open(f"target/bench/vs-redis-{server}.hgrm"):
        f = line.split()
        if len(f) == 4 and f[0][0].isdigit():
            v, p = float(f[0]), float(f[1])
            if 0.5 <= p < 1.0:
                pts.append((min(math.log10(1 / (1 - p)), X1), v))
    curves[server] = pts
    ymax = max([ymax] + [v for _, v in pts])
ymax = ymax * 1.05 or 1.0
sx = lambda x: L + (x - X0) / (X1 - X0) * (W - L - R)
sy = lambda y: H - B - y / ymax * (H - T - B)
o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16">PING latency from the scheduled send, '
     f'vigil load --protocol resp, {sys.argv[1]} connections, 10 PING/s each</text>']
for k, label in enumerate(["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"]):
    x = sx(X0 if k == 0 else k)
    o.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#ddd"/>')
    o.append(f'<text x="{x:.1f}" y="{H - B + 18}" text-anchor="middle">{label}</text>')
for k in range(6):
    y = ymax * k / 5
    o.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#ddd"/>')
    o.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
o.append(f'<text x="{W / 2}" y="{H - 16}" text-anchor="middle">percentile</text>')
o.append(f'<text x="18" y="{H / 2}" text-anchor="middle" transform="rotate(-90 18 {H / 2})">latency (ms)</text>')
for i, (server, color) in enumerate([("vigil", "#d62728"), ("redis", "#1f77b4")]):
    pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curves[server])
    o.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
    o.append(f'<line x1="{L + 20}" y1="{T + 16 + 18 * i}" x2="{L + 44}" y2="{T + 16 + 18 * i}" stroke="{color}" stroke-width="2"/>')
    o.append(f'<text x="{L + 50}" y="{T + 20 + 18 * i}">{server}</text>')
o.append("</svg>")
open("target/bench/vs-redis-latency.svg", "w").write("\n".join(o) + "\n")
for server in ("vigil", "redis"):
    j = json.load(open(f"target/bench/vs-redis-{server}.json"))
    print(f"{server}: latency from the scheduled send (us): {json.dumps(j['latency_us']['scheduled'])}")
print("plots: target/bench/vs-redis-latency.svg, target/bench/vs-redis-vigil.svg, target/bench/vs-redis-redis.svg")
PY
