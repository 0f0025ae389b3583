#!/usr/bin/env bash
# Proxy overhead: wrk against nginx directly vs through `mynah proxy` (recording everything, default
# masking on) at the same connection count.
#
#   bench/run_proxy.sh [SECONDS] [ROUNDS]     (defaults 10 and 3)
#   PROXY_ARGS="..."  extra flags for mynah proxy (e.g. "--deny-url ." to record nothing, which
#                     separates the cost of proxying from the cost of masking and writing)
#
# nginx (1 worker, access_log off, `return 200` of a 6-byte body) is pinned to core 0; wrk and
# mynah proxy share core 1 (`taskset`), so the proxy's CPU is charged against the load it can carry,
# as it would be on a real host. Each round runs, one after the other, direct then proxied:
# - throughput: `wrk -t1 -c50 -dSECONDS` (Requests/sec);
# - latency at light load: `wrk -t1 -c1 -dSECONDS --latency`: one request at a time, so p50 is the
#   round trip and the difference is what the proxy adds to each request;
# - latency at moderate load: `wrk -t1 -c10 -dSECONDS --latency`.
# Then it prints medians: the throughput ratio (proxied/direct) and the p50/p99 latency added, and
# the proxy's own summary (requests proxied, exchanges written, not recorded).
# Needs nginx, wrk, taskset, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-10}
rounds=${2:-3}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores (nginx on core 0, wrk and the proxy on core 1)" >&2; exit 1; }

bench_build
work=$(mktemp -d /tmp/mynah-bench-proxy.XXXXXX)
nginx_pid=
proxy_pid=
cleanup() { stop_pid "$proxy_pid"; stop_pid "$nginx_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
start_bench_nginx "$port" \
  '  access_log off;' \
  '    location / { return 200 "hello\n"; }'

pport=$(free_port)
taskset -c 1 "${CARGO_TARGET_DIR:-target}/release/mynah" proxy --listen "127.0.0.1:$pport" --upstream "http://127.0.0.1:$port" \
  -o "$work/proxy.gor" --progress 0 ${PROXY_ARGS:-} 2>"$work/proxy.err" &
proxy_pid=$!
for _ in $(seq 100); do grep -q "proxy listening on" "$work/proxy.err" 2>/dev/null && break; sleep 0.1; done
grep -q "proxy listening on" "$work/proxy.err" || { cat "$work/proxy.err" >&2; exit 1; }

results="$work/results"
: >"$results"

# Runs wrk with the given connection count against $2; appends "NAME ROUND RPS P50_US P99_US LOAD".
run_wrk() {
  local name=$1 url=$2 conns=$3 round=$4 l
  l=$(load1)
  taskset -c 1 wrk -t1 "-c$conns" "-d${secs}s" --latency "$url/bench" >"$work/w.out" 2>&1 \
    || { cat "$work/w.out" >&2; exit 1; }
  grep -q "Non-2xx\|Socket errors" "$work/w.out" && { echo "wrk reported errors:" >&2; cat "$work/w.out" >&2; exit 1; }
  python3 - "$work/w.out" "$name" "$round" "$l" >>"$results" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def us(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
p50 = us(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = us(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
print(sys.argv[2], sys.argv[3], rps, p50, p99, sys.argv[4])
PY
  tail -n 1 "$results" | awk '{ printf "%-14s round %s: %9.0f req/s  p50 %8.1f us  p99 %8.1f us  load %s\n", $1, $2, $3, $4, $5, $6 }'
}

echo "proxy: $rounds rounds of ${secs}s: wrk direct to nginx vs through mynah proxy (recording, default masking)"
echo "nginx on core 0; wrk and the proxy on core 1"
for r in $(seq "$rounds"); do
  for c in 50 1 10; do
    run_wrk "direct-c$c" "http://127.0.0.1:$port" "$c" "$r"
    run_wrk "proxied-c$c" "http://127.0.0.1:$pport" "$c" "$r"
  done
done

kill -INT "$proxy_pid"
wait "$proxy_pid" || true
proxy_pid=
echo
grep -v "listening on" "$work/proxy.err" || true

python3 - "$results" "$(nproc)" <<'PY'
import statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    name, _, rps, p50, p99, load = line.split()
    rows.setdefault(name, []).append((float(rps), float(p50), float(p99), float(load)))
med = {k: tuple(st.median(x[i] for x in v) for i in range(4)) for k, v in rows.items()}
print()
print(f"medians on {sys.argv[2]} cores:")
print(f"{'conns':>5} {'direct req/s':>13} {'proxied req/s':>14} {'ratio':>6} {'p50 direct':>11} {'p50 proxied':>12} {'added p50':>10} {'added p99':>10} {'load':>5}")
for c in (50, 1, 10):
    d, p = med[f"direct-c{c}"], med[f"proxied-c{c}"]
    print(f"{c:>5} {d[0]:>13.0f} {p[0]:>14.0f} {p[0] / d[0]:>6.3f} {d[1]:>9.1f}us {p[1]:>10.1f}us "
          f"{p[1] - d[1]:>8.1f}us {p[2] - d[2]:>8.1f}us {max(d[3], p[3]):>5.2f}")
PY
