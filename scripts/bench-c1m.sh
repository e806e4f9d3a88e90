#!/usr/bin/env bash
# A million connections on one port: `vigil serve --workers auto` and two
# `vigil load` runs against it, heartbeats every INTERVAL (default 60s).
#
#   1. ramp: CONNS connections in all (SILENT of them in a second load
#      run with its own ids and source addresses), at RATE per second;
#   2. hold HOLD (default 60s): everyone beats;
#   3. the SILENT run is stopped (SIGSTOP) at once: its connections go
#      silent together; the server must close each with `BYE timeout`
#      within TIMEOUT + one tick of its last heartbeat, none early, while
#      the others keep being answered (0 false expirations, 0 closes).
#      The last heartbeats are not logged, so "early" is judged against
#      the stop: before TIMEOUT - INTERVAL, less the load generator's
#      worst lateness (a beat sent late makes its close come earlier).
#
# Prints one table and one JSON line (also in target/bench/c1m.json):
# connections held, connect errors, unexpected closes, false expirations,
# silent connections closed (first and last close after the stop, against
# the window [TIMEOUT - INTERVAL, TIMEOUT + tick]), server user-space bytes
# per connection (RSS summed over the supervisor and every worker), machine
# bytes per connection (MemAvailable), server CPU-seconds per million
# heartbeats (over the main run's hold, which includes the expirations and
# the silent run's first beats: an upper bound; and over the steady hold
# before the silence, everyone beating, per heartbeat offered), RTT
# p50/p99/p99.9 and the time to connect everything. Exits 1 if any of the error counts is not 0.
#
# Usage: scripts/bench-c1m.sh [CONNS]   (default 1000000)
# Environment: SILENT (default 100000, at most CONNS/2), RATE (default
# 10000), HOLD (default 60s), INTERVAL (default 60s), TIMEOUT (default 90s).
# Needs: root or enough limits (see README "Running big"): fs.nr_open and
# the hard RLIMIT_NOFILE above ~20,000 are not needed (more processes are
# used), but ~3 KB of kernel memory per socket (6 GB at a million, both
# ends on this machine) and 127.0.0.0/8 source addresses are.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-1000000}
SILENT=${SILENT:-100000}
[ "$SILENT" -gt $(( CONNS / 2 )) ] && SILENT=$(( CONNS / 2 ))
MAIN=$(( CONNS - SILENT ))
RATE=${RATE:-10000}
HOLD=${HOLD:-60s}; INTERVAL=${INTERVAL:-60s}; TIMEOUT=${TIMEOUT:-90s}
TICK_MS=100
secs() { case "$1" in *s) echo "${1%s}" ;; *) echo "durations in whole seconds, e.g. 60s" >&2; exit 2 ;; esac; }
HOLD_S=$(secs "$HOLD"); INTERVAL_S=$(secs "$INTERVAL"); TIMEOUT_S=$(secs "$TIMEOUT")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PER_PROC=$(( $(ulimit -n) - 10 ))
procs_for() { echo $(( ($1 + PER_PROC - 1) / PER_PROC )); }
# At most 2,000 connections per source address (see bench-capacity.sh).
sources_for() { local n=$(( ($2 + 1999) / 2000 )); echo "127.$1.0.1-127.$1.$(( n / 250 )).$(( n % 250 + 1 ))"; }
MAIN_SRC=$(sources_for 10 "$MAIN"); SILENT_SRC=$(sources_for 20 "$SILENT")

cargo build --release --quiet
mkdir -p target/bench
BIN=target/release/vigil
HZ=$(getconf CLK_TCK)
SRV=""; MAIN_PID=""; SIL_PID=""
tmp=$(mktemp -d)
cleanup() {
  # Only what this script started, by PID (the load runs end their workers).
  [ -n "$SIL_PID" ] && { kill -CONT $(tree "$SIL_PID") 2>/dev/null; kill "$SIL_PID" 2>/dev/null; } || true
  [ -n "$MAIN_PID" ] && kill "$MAIN_PID" 2>/dev/null || true
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
avail_kib() { awk '/^MemAvailable/ {print $2}' /proc/meminfo; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tree() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }
tree_sum() { local t=0 p; for p in $(tree "$2"); do t=$(( t + $($1 "$p") )); done; echo $t; }
wait_for() { # $1: file, $2: text, $3: tenths of a second
  local i
  for i in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; tail -20 "$1" >&2; return 1
}

RUST_LOG=warn,vigil::cmd::workers=info "$BIN" serve --listen 127.0.0.1:0 --workers auto \
  --max-conns $(( CONNS + 1000 )) --interval "$INTERVAL" --timeout "$TIMEOUT" \
  --stats-interval 0ms --events "$tmp/events.jsonl" 2>"$tmp/serve.log" &
SRV=$!
wait_for "$tmp/serve.log" "listening on" 300
PORT=$(grep -o 'listening on [0-9.]*:[0-9]*' "$tmp/serve.log" | head -1 | awk -F: '{print $NF}')
WORKERS=$(grep -o 'with [0-9]* of [0-9]* workers' "$tmp/serve.log" | head -1)
rss0=$(tree_sum rss_kib $SRV); avail0=$(avail_kib); sup0=$(rss_kib $SRV)
echo "vigil serve: port $PORT, $WORKERS; loads: $MAIN + $SILENT connections at $RATE/s, beats every $INTERVAL" >&2

t_start=$(date +%s.%N)
# The main run holds through the hold and the silent phase.
"$BIN" load --server "127.0.0.1:$PORT" --conns "$MAIN" --connect-rate $(( RATE * MAIN / CONNS )) \
  --interval "$INTERVAL" --duration $(( HOLD_S + TIMEOUT_S + 30 ))s --timeout 10s \
  --procs "$(procs_for "$MAIN")" --source-ips "$MAIN_SRC" --id-prefix main- --json \
  >"$tmp/main.json" 2>"$tmp/main.log" &
MAIN_PID=$!
"$BIN" load --server "127.0.0.1:$PORT" --conns "$SILENT" --connect-rate $(( RATE * SILENT / CONNS )) \
  --interval "$INTERVAL" --duration 3600s --timeout 10s \
  --procs "$(procs_for "$SILENT")" --source-ips "$SILENT_SRC" --id-prefix silent- --json \
  >/dev/null 2>"$tmp/silent.log" &
SIL_PID=$!
ramp=$(( (CONNS / RATE + 120) * 10 ))
wait_for "$tmp/main.log" "holding:" "$ramp"
wait_for "$tmp/silent.log" "holding:" "$ramp"
t_connected=$(date +%s.%N)
cpu0=$(tree_sum cpu_ticks $SRV); tc0=$(date +%s.%N)
sleep $(( HOLD_S > 4 ? HOLD_S - 2 : HOLD_S / 2 ))
rss1=$(tree_sum rss_kib $SRV); avail1=$(avail_kib); sup1=$(rss_kib $SRV)
sleep 2
cpu_steady=$(tree_sum cpu_ticks $SRV); tc_steady=$(date +%s.%N)
# Silence: the whole silent run, at once.
kill -STOP $(tree "$SIL_PID")
t_stop=$(date +%s.%N)
echo "stopped the silent run at +$(awk -v a="$t_stop" -v b="$t_start" 'BEGIN{printf "%.1f", a-b}')s; waiting $(( TIMEOUT_S + 15 ))s" >&2
sleep $(( TIMEOUT_S + 15 ))
wait_for "$tmp/main.log" "hold over:" $(( (HOLD_S + 60) * 10 ))
cpu1=$(tree_sum cpu_ticks $SRV); tc1=$(date +%s.%N)
wait $MAIN_PID || true; MAIN_PID=""
kill -CONT $(tree "$SIL_PID") 2>/dev/null || true; kill "$SIL_PID" 2>/dev/null || true
wait $SIL_PID 2>/dev/null || true; SIL_PID=""
kill -TERM $SRV; wait $SRV || true; SRV=""

python3 - "$tmp" "$CONNS" "$SILENT" "$HZ" "$rss0" "$rss1" "$avail0" "$avail1" "$cpu0" "$cpu1" \
  "$t_start" "$t_connected" "$t_stop" "$tc0" "$tc1" "$INTERVAL_S" "$TIMEOUT_S" "$TICK_MS" "$WORKERS" \
  "$sup0" "$sup1" "$cpu_steady" "$tc_steady" <<'PY'
import json, sys, datetime
tmp = sys.argv[1]
conns, silent, hz, rss0, rss1, a0, a1, c0, c1 = map(int, sys.argv[2:11])
t_start, t_conn, t_stop, tc0, tc1 = map(float, sys.argv[11:16])
interval, timeout, tick_ms = map(int, sys.argv[16:19])
workers = sys.argv[19]
sup0, sup1 = map(int, sys.argv[20:22])
cpu_steady, tc_steady = int(sys.argv[22]), float(sys.argv[23])
main = json.load(open(f"{tmp}/main.json"))
def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
online = set(); silent_closed = []; false_exp = 0; other_offline = {}
for line in open(f"{tmp}/events.jsonl"):
    e = json.loads(line)
    if e["event"] == "hello":
        online.add(e["client"])
    if e["event"] != "offline":
        continue
    client = e["client"] or ""
    if e["reason"] == "timeout" and client.startswith("silent-"):
        silent_closed.append(ts(e["time"]) - t_stop)
    elif e["reason"] == "timeout":
        false_exp += 1
    elif e["reason"] != "shutdown":
        other_offline[e["reason"]] = other_offline.get(e["reason"], 0) + 1
held = len(online)
hb = main["heartbeats"]
srv_cpu = (c1 - c0) / hz
# A silent connection's last beat came at most one interval before the
# stop if the generator sent every beat on time; a beat sent late (a load
# process waiting for a core among a hundred) moves its close earlier by as
# much. So a close is early only before the window's start less the worst
# lateness the generator showed meanwhile: the main run's largest latency
# from a beat's scheduled time to its reply (a bound on the send's lateness).
lag = main["latency_us"]["scheduled"]["max"] / 1e6
early = sum(1 for d in silent_closed if d < timeout - interval - lag)
late = sum(1 for d in silent_closed if d > timeout + tick_ms / 1000 + 1)
t = main["latency_us"]["rtt"]
r = {
    "conns": conns, "workers": workers, "held": held, "silent": silent,
    "connect_errors": main["connect_errors"]["total"], "unexpected_closes": main["closes"]["total"],
    "false_expirations": false_exp, "other_offline": other_offline,
    "silent_closed": len(silent_closed),
    "silent_first_close_s": round(min(silent_closed), 3) if silent_closed else None,
    "silent_last_close_s": round(max(silent_closed), 3) if silent_closed else None,
    "silent_early": early, "silent_late": late, "generator_lag_s": round(lag, 3),
    "server_bytes_per_conn": round((rss1 - rss0) * 1024 / max(held, 1), 1),
    "workers_bytes_per_conn": round((rss1 - sup1 - rss0 + sup0) * 1024 / max(held, 1), 1),
    "supervisor_bytes_per_conn": round((sup1 - sup0) * 1024 / max(held, 1), 1),
    "machine_bytes_per_conn": round((a0 - a1) * 1024 / max(held, 1), 1),
    "server_cpu_s": round(srv_cpu, 2),
    "server_cpu_s_per_million_heartbeats": round(srv_cpu / max(hb["hold_received"], 1) * 1e6, 2),
    "hold_heartbeats_main": hb["hold_received"],
    # The steady hold: everyone connected and beating, before the silence.
    # Each connection beats once per interval, so the window holds about
    # conns x window / interval heartbeats (offered, not counted).
    "steady_window_s": round(tc_steady - tc0, 1),
    "steady_server_cpu_s": round((cpu_steady - c0) / hz, 2),
    "steady_server_cpu_s_per_million_heartbeats": round(
        (cpu_steady - c0) / hz / max(conns * (tc_steady - tc0) / interval, 1) * 1e6, 2),
    "rtt_us": {k: t[k] for k in ("p50", "p99", "p99_9", "max")},
    "connect_all_s": round(t_conn - t_start, 1),
}
json.dump(r, open("target/bench/c1m.json", "w"))
rows = [
    ("connections held (said HELLO)", f"{held:,} of {conns:,} ({workers})"),
    ("connect errors / unexpected closes", f"{r['connect_errors']} / {r['unexpected_closes']}"),
    ("false expirations", f"{false_exp}"),
    ("silent closed (timeout)", f"{len(silent_closed):,} of {silent:,}"),
    ("  first / last close after the stop", f"{r['silent_first_close_s']} s / {r['silent_last_close_s']} s (window {timeout - interval}..{timeout + tick_ms / 1000} s)"),
    ("  early / late", f"{early} / {late} (early: before {timeout - interval} s less the generator's lag, {lag:.3f} s; late: past the window + 1 s)"),
    ("server RSS / conn (all processes)", f"{r['server_bytes_per_conn']:.0f} B"),
    ("  workers / supervisor (--events)", f"{r['workers_bytes_per_conn']:.0f} B / {r['supervisor_bytes_per_conn']:.0f} B"),
    ("machine MemAvailable / conn", f"{r['machine_bytes_per_conn']:.0f} B"),
    ("server CPU-s / million heartbeats", f"{r['server_cpu_s_per_million_heartbeats']} (main run's hold, silence included)"),
    ("  steady hold, everyone beating", f"{r['steady_server_cpu_s_per_million_heartbeats']} (over {r['steady_window_s']} s, heartbeats offered)"),
    ("RTT p50 / p99 / p99.9 / max (µs)", f"{t['p50']} / {t['p99']} / {t['p99_9']} / {t['max']}"),
    ("time to connect everything", f"{r['connect_all_s']} s"),
]
for k, v in rows:
    print(f"{k:<40}{v}")
print(json.dumps(r))
bad = r["connect_errors"] or r["unexpected_closes"] or false_exp or early or late \
    or len(silent_closed) != silent or held != conns
sys.exit(1 if bad else 0)
PY
