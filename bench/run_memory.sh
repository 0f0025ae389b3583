#!/usr/bin/env bash
# Memory per virtual user: `mynah run` with USERS users, each pausing 5 s between requests and keeping
# its own keep-alive connection to nginx, against the same binary with 1 user.
#
#   bench/run_memory.sh [USERS]     (default 20000)
#
# mynah's VmRSS and VmHWM are polled from /proc/PID/status every 200 ms. Steady RSS is the median of
# the samples taken once every user has started and made a second request, until 1 s before the end;
# baseline is the same for a 1-user run. Reports KiB per user = (steady - baseline) / USERS, and
# checks from nginx's access log ($connection) that nginx saw USERS to USERS x 1.01 distinct
# connections, >= 99% of them with 2+ requests (so each user kept its own connection). Users start at
# 2000/s and nginx runs 2 workers (reuseport): with 1 worker and 4000/s, nginx ran out of
# worker_connections near 19,000 and closed idle keep-alive connections, making users reconnect.
# Needs nginx and an open-files hard limit of at least USERS + 1000 (`ulimit -Hn`).
# KEEP=1 keeps the temporary directory (logs, samples) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
users=${1:-20000}
spawn_rate=2000
wait_s=5
spawn_s=$(( (users + spawn_rate - 1) / spawn_rate ))
run_s=$(( spawn_s + 4 * wait_s ))           # every user makes >= 4 requests after it starts
[ "$run_s" -ge 25 ] || run_s=25
steady_from=$(( spawn_s + wait_s + 2 ))     # all started and each has made its second request
goal_kib=10

hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((users + 1000)) ]; then
  echo "open-files hard limit is $hard, below USERS + 1000 = $((users + 1000)): raise it (limits.conf," >&2
  echo "or prlimit --nofile=N:N as root) or run fewer users: bench/run_memory.sh $((hard - 1000))" >&2
  exit 1
fi
ulimit -n "$hard"

bench_build
work=$(mktemp -d /tmp/mynah-bench-mem.XXXXXX)
nginx_pid=
mynah_pid=
cleanup() { stop_pid "$mynah_pid"; stop_pid "$nginx_pid"; if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
mkdir -p "$work/ng"
cat >"$work/ng/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile $hard;
daemon off;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections $((hard - 100)); multi_accept on; }
http {
  log_format conn '\$connection \$connection_requests \$uri';
  access_log logs/access.log conn buffer=256k;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$port reuseport backlog=8192;
    location / { return 200 "hello\n"; }
  }
}
EOF
start_nginx "$work/ng"
wait_port "$port"

# The 1-user baseline asks for /base and the measured run for /bench, so that nginx's log tells them apart.
for p in base bench; do
  cat >"$work/$p.yaml" <<EOF
host: http://127.0.0.1:$port
users:
  - name: idle
    wait_time: { constant: $wait_s }
    tasks:
      - request: { method: GET, path: /$p }
EOF
done

# Runs mynah with $1 users for $2 s on scenario $4, polling its memory every 200 ms into $3
# ("seconds rss_kib hwm_kib").
run_polled() {
  local n=$1 secs=$2 log=$3 path=$4 t0
  : >"$log"
  target/release/mynah run "$work/$path.yaml" -u "$n" -r "$spawn_rate" -t "${secs}s" \
    --summary-json "$work/summary-$n.json" >"$work/out-$n" 2>&1 &
  mynah_pid=$!
  t0=$(date +%s.%N)
  while [ -r "/proc/$mynah_pid/status" ] && ! grep -q '^State:.*Z' "/proc/$mynah_pid/status" 2>/dev/null; do
    awk -v t="$(date +%s.%N)" -v t0="$t0" '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 }
      END { if (r) printf "%.1f %d %d\n", t - t0, r, h }' "/proc/$mynah_pid/status" >>"$log" 2>/dev/null || true
    sleep 0.2
  done
  wait "$mynah_pid" || { echo "mynah run failed:" >&2; cat "$work/out-$n" >&2; exit 1; }
  mynah_pid=
}

echo "memory: $users users, wait_time constant $wait_s s, spawn rate $spawn_rate/s, run ${run_s}s (load $(load1))"
echo "goal: <= $goal_kib KiB per user (Locust 25-38 KiB, Goose 134 KiB on a 2-core VM of this kind)"
run_polled 1 10 "$work/mem-1" base
run_polled "$users" "$run_s" "$work/mem-n" bench
kill -QUIT "$nginx_pid" 2>/dev/null || true # graceful stop flushes the buffered access log
wait "$nginx_pid" 2>/dev/null || true
nginx_pid=

python3 - "$users" "$run_s" "$steady_from" "$goal_kib" "$work" "$(load1)" <<'PY'
import json, statistics as st, sys
users, run_s, steady_from, goal = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
work, load = sys.argv[5], sys.argv[6]

def samples(path):
    return [tuple(float(x) for x in l.split()) for l in open(path) if l.strip()]

base = samples(f"{work}/mem-1")
base_rss = st.median(r for t, r, h in base if t >= 3)
full = samples(f"{work}/mem-n")
steady = [r for t, r, h in full if steady_from <= t <= run_s - 1]
if not steady:
    sys.exit("no memory samples in the steady window")
steady_rss = st.median(steady)
peak = max(h for t, r, h in full)
summ = json.load(open(f"{work}/summary-{users}.json"))
tot = summ["total"]

conns, reqs, reused = {}, 0, 0
for line in open(f"{work}/ng/logs/access.log"):
    c, n, uri = line.split()
    if uri != "/bench":
        continue
    conns[c] = max(conns.get(c, 0), int(n))
    reqs += 1
reused = sum(1 for n in conns.values() if n >= 2)

kib = (steady_rss - base_rss) / users
print()
print(f"{'':<28} {'KiB':>10} {'MiB':>8}")
print(f"{'baseline RSS (1 user)':<28} {base_rss:>10.0f} {base_rss/1024:>8.1f}")
print(f"{'steady RSS (%d users)' % users:<28} {steady_rss:>10.0f} {steady_rss/1024:>8.1f}   median of {len(steady)} samples, t = {steady_from:.0f}..{run_s-1:.0f} s")
print(f"{'peak RSS (VmHWM)':<28} {peak:>10.0f} {peak/1024:>8.1f}")
print()
print(f"mynah: {tot['requests']} requests, {tot['failures']} failures, users_max {summ['users_max']}")
own = users <= len(conns) <= users * 1.01 + 1 and reused >= users * 0.99
print(f"nginx: {reqs} requests on {len(conns)} distinct connections, {reused} of them with >= 2 requests"
      f" ({'OK: each user kept its own connection' if own else 'FAIL: users did not each keep one connection'})")
print()
print(f"KiB per user (steady - baseline) / users  {kib:6.2f}   goal <= {goal:.0f}  {'PASS' if kib <= goal else 'FAIL'}")
print(f"KiB per user (peak - baseline) / users    {(peak - base_rss) / users:6.2f}")
print(f"ratios: Locust/mynah {25/kib:.1f}-{38/kib:.1f}x, Goose/mynah {134/kib:.1f}x   (load {load})")
if not own or tot["failures"]:
    sys.exit(1)
PY
