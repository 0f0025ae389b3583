#!/usr/bin/env bash
# Latency accuracy: mynah's reported p50/p95/p99 against a server whose true percentiles are known.
#
#   bench/run_accuracy.sh [SECONDS]     (default 20)
#
# `mynah-testserver app` (pinned to core 0) answers GET /accuracy after a deterministic cycle of delays
# whose server-side p50/p95/p99 are 20/100/250 ms (ACCURACY_TRUTH_MS in crates/testkit/src/app.rs, read
# from there). mynah (pinned to core 1) runs 20 users without think time for SECONDS; its summary JSON
# percentiles are compared with the truth. Client latency also holds loopback, client overhead and the
# server's own lateness (its sleeps end a little late), so when wrk is installed a second phase runs wrk
# with the same 20 connections and a Lua script that records the server's own `x-server-time-us` per
# response: that is the server-measured truth under the same load, and wrk's client-side percentiles
# are a peer reference. Goal: mynah within 1% of the truth.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-20}
users=${USERS:-20}
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 1; }

# The truth, from the source: `pub const ACCURACY_TRUTH_MS: [(f64, f64); 3] = [(50.0, 20.0), ...];`
truth=$(python3 - <<'PY'
import re
src = open("crates/testkit/src/app.rs").read()
m = re.search(r"ACCURACY_TRUTH_MS:[^=]*=\s*\[(.*?)\];", src, re.S)
pairs = re.findall(r"\(\s*([\d.]+)\s*,\s*([\d.]+)\s*\)", m.group(1))
mean = re.search(r"ACCURACY_MEAN_MS:\s*f64\s*=\s*([\d.]+)", src).group(1)
print(" ".join(f"{float(p):g}:{float(v):g}" for p, v in pairs), f"mean:{float(mean):g}")
PY
)
[ -n "$truth" ] || { echo "cannot read ACCURACY_TRUTH_MS from crates/testkit/src/app.rs" >&2; exit 1; }

bench_build
work=$(mktemp -d /tmp/mynah-bench-acc.XXXXXX)
server_pid=
cleanup() { stop_pid "$server_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
taskset -c 0 target/release/mynah-testserver app --listen "127.0.0.1:$port" >"$work/server.out" 2>&1 &
server_pid=$!
wait_port "$port"

cat >"$work/scenario.yaml" <<EOF
host: http://127.0.0.1:$port
users:
  - name: acc
    tasks:
      - request: { method: GET, path: /accuracy }
load: { users: $users, spawn_rate: 1000, run_time: ${secs}s }
EOF

echo "accuracy: $users users, no think time, ${secs}s on GET /accuracy (server on core 0, client on core 1)"
echo "truth (crates/testkit/src/app.rs ACCURACY_TRUTH_MS, ACCURACY_MEAN_MS): $truth ms; goal: mynah within 1%"
l=$(load1)
taskset -c 1 target/release/mynah run "$work/scenario.yaml" --summary-json "$work/m.json" >"$work/m.out" 2>&1 \
  || { cat "$work/m.out" >&2; exit 1; }

have_wrk=0
if command -v wrk >/dev/null; then
  have_wrk=1
  cat >"$work/server_time.lua" <<EOF
-- Records the server's x-server-time-us of every response, and wrk's own latency percentiles.
local f
function init(args) f = io.open("$work/server_us", "w") end
function response(status, headers, body)
  local t = headers["x-server-time-us"] or headers["X-Server-Time-Us"]
  if t then f:write(t, "\n") end
end
function done(summary, latency, requests)
  local g = io.open("$work/wrk_pct", "w")
  for _, p in ipairs({50, 95, 99}) do g:write(p, " ", latency:percentile(p) / 1000, "\n") end
  g:write("mean ", latency.mean / 1000, "\n")
  g:write("requests ", summary.requests, "\n")
  g:close()
end
EOF
  taskset -c 1 wrk -t1 -c"$users" "-d${secs}s" -s "$work/server_time.lua" "http://127.0.0.1:$port/accuracy" \
    >"$work/w.out" 2>&1 || { cat "$work/w.out" >&2; exit 1; }
else
  echo "note: wrk not installed: no server-measured truth (only the nominal cycle values)"
fi

python3 - "$work" "$truth" "$have_wrk" "$l" "$(load1)" <<'PY'
import json, sys
work, truth, have_wrk, l0, l1 = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5]
truth = [tuple(float(x) for x in t.split(":")) for t in truth.split() if not t.startswith("mean:")]
nominal_mean = float(sys.argv[2].split("mean:")[1])
tot = json.load(open(f"{work}/m.json"))["total"]
lat = tot["latency_ms"]
if tot["failures"]:
    sys.exit(f"mynah: {tot['failures']} failures")

server = {}
wrk = {}
if have_wrk:
    us = sorted(int(x) for x in open(f"{work}/server_us") if x.strip())
    for p, _ in truth:  # nearest rank
        k = max(1, -(-int(p * len(us)) // 100))
        server[p] = us[min(k, len(us)) - 1] / 1000
    server["mean"] = sum(us) / len(us) / 1000
    server["n"] = len(us)
    for line in open(f"{work}/wrk_pct"):
        k, v = line.split()
        wrk[k] = float(v)

def key(p):
    return f"p{p:g}"

print()
print(f"mynah: {tot['requests']} requests, {tot['rps']:.0f} req/s, load {l0}")
hdr = f"{'':<5} {'truth':>8} {'mynah':>8} {'error':>8}"
if have_wrk:
    hdr += f" {'server':>8} {'mynah vs server':>16} {'wrk':>8} {'wrk error':>10}"
    print("truth = nominal cycle; server = x-server-time-us during the wrk phase; errors relative")
print(hdr + "   (ms)")
worst = 0.0
for p, t in truth:
    m = lat[key(p)]
    e = (m - t) / t
    worst = max(worst, abs(e))
    line = f"{key(p):<5} {t:>8.2f} {m:>8.3f} {e:>+8.2%}"
    if have_wrk:
        s = server[p]
        w = wrk[f"{p:g}"]
        line += f" {s:>8.3f} {(m - s) / s:>+16.2%} {w:>8.3f} {(w - t) / t:>+10.2%}"
    print(line)
nm = nominal_mean
mean_line = f"{'mean':<5} {nm:>8.2f} {lat['mean']:>8.3f} {(lat['mean'] - nm) / nm:>+8.2%}"
if have_wrk:
    mean_line += f" {server['mean']:>8.3f} {(lat['mean'] - server['mean']) / server['mean']:>+16.2%} {wrk['mean']:>8.3f} {(wrk['mean'] - nm) / nm:>+10.2%}"
print(mean_line)
print()
print(f"mynah's overhead over the nominal delays: mean {lat['mean'] - nm:+.3f} ms; min {lat['min']:.3f} ms (shortest nominal delay 5 ms)")
if have_wrk:
    print(f"server-measured (x-server-time-us of {server['n']} responses to wrk): mean {server['mean'] - nm:+.3f} ms vs nominal;"
          " wrk's own latency figures (wrk column) are shown for reference only")
print(f"worst |error| vs truth {worst:.2%}   goal <= 1%  {'PASS' if worst <= 0.01 else 'FAIL'}   (load {l0} -> {l1})")
PY
