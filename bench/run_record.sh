#!/usr/bin/env bash
# Live capture: the share of nginx-served requests that `mynah record --interface lo` captures whole
# while wrk drives nginx through loopback at full speed, and the rate it sustains.
#
#   bench/run_record.sh [SECONDS]       (default 30)
#   WRK_CORE=N   the core wrk runs on (default 0, beside nginx; mynah record has core 1 to itself)
#
# nginx (1 worker, access log ON to a file, `location = /bench { return 200 "hello\n"; }`) is pinned to
# core 0, `mynah record` to core 1. mynah starts first (the script waits for its "capturing on" line),
# then `wrk -t1 -c50 -dSECONDS`; 2 s after wrk ends mynah gets SIGINT and writes its file (default
# masking on, as a user would run it). nginx's access log is the witness: every request it logged
# should be in the file, complete. Reports nginx-logged requests, captured complete exchanges, the
# share (goal >= 99.9%), the sustained capture rate, and the kernel's drops (pcap statistics).
# Needs root (or CAP_NET_RAW), nginx, wrk, taskset, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-30}
wrk_core=${WRK_CORE:-0}
target_dir=${CARGO_TARGET_DIR:-target}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores (nginx on core 0, mynah record on core 1)" >&2; exit 1; }

echo "building release binaries (cargo build --release -p mynah)..." >&2
cargo build --release -q -p mynah
mynah=$target_dir/release/mynah

work=$(mktemp -d /tmp/mynah-bench-record.XXXXXX)
nginx_pid=
rec_pid=
cleanup() { stop_pid "$rec_pid"; stop_pid "$nginx_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(free_port)
start_bench_nginx "$port" \
  "  log_format bench '\$request_method \$request_uri \$status';
  access_log logs/access.log bench buffer=256k flush=1s;" \
  '    location = /bench { return 200 "hello\n"; }'

# mynah record on core 1; wait until the capture is active.
taskset -c 1 "$mynah" record --interface lo --port "$port" -o "$work/rec.gor" 2>"$work/rec.err" &
rec_pid=$!
for i in $(seq 100); do
  grep -q "capturing on lo" "$work/rec.err" && break
  kill -0 "$rec_pid" 2>/dev/null || { cat "$work/rec.err" >&2; exit 1; }
  sleep 0.1
done
grep -q "capturing on lo" "$work/rec.err" || { echo "mynah record did not start:" >&2; cat "$work/rec.err" >&2; exit 1; }

l=$(load1)
c1_before=$(core_busy 1)
echo "record: wrk -t1 -c50 -d${secs}s on core $wrk_core against nginx (core 0), mynah record --interface lo on core 1 (load $l)"
taskset -c "$wrk_core" wrk -t1 -c50 "-d${secs}s" "http://127.0.0.1:$port/bench" >"$work/wrk.out" 2>&1 \
  || { cat "$work/wrk.out" >&2; exit 1; }
sleep 2
# mynah's own CPU (user + sys, in clock ticks) before it starts writing the end of its file.
rec_ticks=$(awk '{ print $14 + $15 }' "/proc/$rec_pid/stat")
kill -INT "$rec_pid"
wait "$rec_pid" || { echo "mynah record failed:" >&2; cat "$work/rec.err" >&2; exit 1; }
rec_pid=
c1_after=$(core_busy 1)
stop_pid "$nginx_pid"   # flushes the buffered access log
nginx_pid=

"$mynah" inspect --json "$work/rec.gor" >"$work/rec.json"
python3 - "$work/ng/logs/access.log" "$work/rec.json" "$work/rec.err" "$work/wrk.out" "$secs" \
  "$c1_before" "$c1_after" "$l" "$rec_ticks" "$(getconf CLK_TCK)" <<'PY'
import json, re, sys
log, rec, err, wrk, secs, c1a, c1b, load, ticks, hz = sys.argv[1:11]
cpu = float(ticks) / float(hz)
secs = float(secs)
logged = sum(1 for line in open(log) if line.startswith("GET /bench "))
s = json.load(open(rec))
incomplete = sum(s["incomplete"].values())
complete = s["exchanges"] - incomplete
stderr = open(err).read()
m = re.search(r"packets: (\d+) seen .*?, (\d+) dropped by the kernel, (\d+) dropped by the interface", stderr)
packets, kdrop, ifdrop = (int(x) for x in m.groups()) if m else (0, -1, -1)
w = open(wrk).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w).group(1))
share = complete / logged if logged else 0.0
busy = float(c1b) - float(c1a)
print()
print(f"nginx logged         {logged:>10} requests ({rps:,.0f} req/s by wrk)")
print(f"captured complete    {complete:>10} exchanges ({incomplete} incomplete: {s['incomplete'] or '-'})")
print(f"packets              {packets:>10} seen, {kdrop} dropped by the kernel, {ifdrop} by the interface")
print(f"sustained capture    {complete / secs:>10,.0f} exchanges/s, {packets / secs:,.0f} packets/s over {secs:.0f} s")
print(f"mynah record CPU     {cpu:>10.2f} s ({cpu / (secs + 2) * 100:.0f}% of a core; {cpu / max(complete, 1) * 1e6:.1f} us per exchange)")
print(f"core 1 busy          {busy / (secs + 2) * 100:>9.0f} % (mynah record and anything else there; load {load})")
print(f"share captured       {share * 100:>9.3f} %   goal >= 99.9%  {'PASS' if share >= 0.999 else 'FAIL'}")
PY
