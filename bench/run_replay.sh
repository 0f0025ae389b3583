#!/usr/bin/env bash
# Replay: requests/s of `mynah replay --max-speed` on a 1,000,000-request .gor recording vs wrk on
# the same endpoint mix, then the schedule lag of a paced replay (`--rate 5000 --loop`).
#
#   bench/run_replay.sh [ROUNDS] [PACED_SECONDS]     (defaults 3 and 20)
#   REQUESTS=N  size of the phase-1 recording (default 1000000)
#   RATE=N      requests/s of phase 2 (default 5000)
#   MYNAH_FLAGS extra `mynah replay` flags for phase 1, e.g. --no-spool
#
# nginx (1 worker, access_log off, five `return 200` locations) is pinned to core 0 and the
# generator to core 1 (`taskset`). Phase 1 alternates, ROUNDS times: mynah replays the whole
# recording as fast as nginx answers on 50 connections, then wrk -t1 -c50 runs as long as mynah
# took, with a Lua script cycling the same five requests. Phase 2 replays a 10,000-request
# recording at RATE requests/s for PACED_SECONDS with --loop and reports the schedule lag (when each
# request went out minus when it was due) from the summary JSON.
# The recordings are written once by python3 into bench/out/ and reused.
# Needs nginx, wrk, taskset, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
paced_secs=${2:-20}
requests=${REQUESTS:-1000000}
rate=${RATE:-5000}
small=10000

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores (server on core 0, generator on core 1)" >&2; exit 1; }

bench_build
work=$(mktemp -d /tmp/mynah-bench-replay.XXXXXX)
nginx_pid=
cleanup() { stop_pid "$nginx_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The endpoint mix, in the order both tools cycle through it.
paths=(/ /api/items /api/items/42 "/api/search?q=shoes&page=2" /static/app.js)

# Writes a .gor recording of $2 GET requests cycling through the paths, 10 µs apart (GoReplay's
# format: `1 ID TIMESTAMP` header line, the raw request, the monkeys separator).
make_gor() {
  local out=$1 n=$2
  [ -s "$out" ] && return 0
  echo "writing $out ($n requests)..." >&2
  python3 - "$out" "$n" "${paths[@]}" <<'PY'
import sys
out, n, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
reqs = [
    f"GET {p} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: mynah-bench/1\r\nAccept: */*\r\n\r\n".encode()
    for p in paths
]
t0 = 1_700_000_000_000_000_000
tmp = out + ".tmp"
with open(tmp, "wb", buffering=1 << 20) as f:
    chunk = []
    for i in range(n):
        chunk.append(b"1 %024x %d 0\n" % (i, t0 + i * 10_000) + reqs[i % len(reqs)] + sep)
        if len(chunk) == 10_000:
            f.write(b"".join(chunk))
            chunk = []
    f.write(b"".join(chunk))
import os
os.replace(tmp, out)
PY
}
mkdir -p bench/out
big=bench/out/replay_${requests}.gor
paced=bench/out/replay_${small}.gor
make_gor "$big" "$requests"
make_gor "$paced" "$small"

port=$(free_port)
start_bench_nginx "$port" \
  '  access_log off;' \
  '    location = / { return 200 "home\n"; }
    location = /api/items { return 200 "[1,2,3]\n"; }
    location = /api/items/42 { return 200 "{\"id\":42}\n"; }
    location = /api/search { return 200 "{\"results\":[]}\n"; }
    location = /static/app.js { return 200 "console.log(1);\n"; }'

lua="$work/mix.lua"
{
  echo "local paths = {"
  for p in "${paths[@]}"; do echo "  \"$p\","; done
  echo "}"
  cat <<'LUA'
local i = 0
wrk.headers["User-Agent"] = "mynah-bench/1"
wrk.headers["Accept"] = "*/*"
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i - 1) % #paths + 1])
end
LUA
} >"$lua"

results="$work/results"
: >"$results"

echo "replay: phase 1, $rounds rounds: mynah replay --max-speed --concurrency 50 of $requests requests vs wrk -t1 -c50"
echo "nginx on core 0, generator on core 1; goal: mynah req/s >= 0.9 x wrk's"
for r in $(seq "$rounds"); do
  l=$(load1)
  t0=$(date +%s.%N)
  cpu_time "$work/m.out" "$work/m.err" taskset -c 1 target/release/mynah replay "$big" --max-speed --concurrency 50 \
    --target "http://127.0.0.1:$port" --no-default-redaction --summary-json "$work/m.json" ${MYNAH_FLAGS:-} \
    || { cat "$work/m.err" "$work/m.out" >&2; exit 1; }
  t1=$(date +%s.%N)
  read -r rps n dur spooled < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1])); t = s["total"]
if t["failures"] or s["replay"]["sent"] != int(sys.argv[2]):
    sys.exit("mynah: %d failures, %d of %s sent" % (t["failures"], s["replay"]["sent"], sys.argv[2]))
print(t["rps"], t["requests"], s["duration_s"], "spooled" if s["replay"]["spooled"] else "parsed")' "$work/m.json" "$requests")
  # The scan before the replay (counting, safety checks, writing the spool) is outside the
  # replay's timed window; shown so that nothing is hidden.
  before=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]) - float(sys.argv[3]):.2f}")' "$t0" "$t1" "$dur")
  echo "mynah $r $rps $n $cpu_s $l" >>"$results"
  printf "mynah  round %d: %8.0f req/s  %8d requests in %6.2f s  cpu %6.2f s  load %s  (%s; scan and start %s s before)\n" \
    "$r" "$rps" "$n" "$dur" "$cpu_s" "$l" "$spooled" "$before"

  secs=$(python3 -c 'import sys; print(max(5, round(float(sys.argv[1]))))' "$dur")
  l=$(load1)
  cpu_time "$work/w.out" "$work/w.err" taskset -c 1 wrk -t1 -c50 "-d${secs}s" -s "$lua" "http://127.0.0.1:$port" \
    || { cat "$work/w.err" >&2; exit 1; }
  grep -q "Non-2xx\|Socket errors" "$work/w.out" && { echo "wrk reported errors:" >&2; cat "$work/w.out" >&2; exit 1; }
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/w.out")
  n=$(awk '/ requests in / { print $1 }' "$work/w.out")
  echo "wrk $r $rps $n $cpu_s $l" >>"$results"
  printf "wrk    round %d: %8.0f req/s  %8d requests in %6d s  cpu %6.2f s  load %s\n" "$r" "$rps" "$n" "$secs" "$cpu_s" "$l"
done

echo
echo "replay: phase 2: mynah replay --rate $rate --duration ${paced_secs}s --loop of $small requests"
l=$(load1)
cpu_time "$work/p.out" "$work/p.err" taskset -c 1 target/release/mynah replay "$paced" --rate "$rate" \
  --duration "${paced_secs}s" --loop --target "http://127.0.0.1:$port" --no-default-redaction \
  --summary-json "$work/p.json" \
  || { cat "$work/p.err" "$work/p.out" >&2; exit 1; }

python3 - "$results" "$work/p.json" "$rate" "$paced_secs" "$(nproc)" "$l" <<'PY'
import json, statistics as st, sys
path, paced, rate, secs, cores, load = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
rows = {}
for line in open(path):
    tool, _, rps, n, cpu, l = line.split()
    rows.setdefault(tool, []).append(dict(rps=float(rps), n=float(n), cpu=float(cpu), load=float(l)))
print()
print(f"phase 1 on {cores} cores, medians:")
print(f"{'tool':<6} {'runs':>4} {'req/s':>9} {'cpu s':>7} {'req/CPU-s':>10} {'load':>5}")
med = {}
for tool, rs in rows.items():
    m = lambda k: st.median(r[k] for r in rs)
    eff = st.median(r["n"] / r["cpu"] for r in rs)
    med[tool] = (m("rps"), eff)
    print(f"{tool:<6} {len(rs):>4} {m('rps'):>9.0f} {m('cpu'):>7.2f} {eff:>10.0f} {m('load'):>5.2f}")
ratio = med["mynah"][0] / med["wrk"][0]
print(f"mynah/wrk req/s        {ratio:6.3f}   goal >= 0.90  {'PASS' if ratio >= 0.9 else 'FAIL'}")
print(f"mynah/wrk req/CPU-s    {med['mynah'][1] / med['wrk'][1]:6.3f}")

s = json.load(open(paced))
rep, tot = s["replay"], s["total"]
lag = rep["schedule_lag_ms"]
want = rate * secs
print()
print(f"phase 2: --rate {rate:.0f} for {secs:.0f} s (load {load}):")
print(f"sent {rep['sent']} (expected {want:.0f}, {100 * (rep['sent'] - want) / want:+.2f}%), dropped {rep['dropped']}, "
      f"failures {tot['failures']}, {tot['rps']:.0f} req/s")
fmt = lambda v: "null" if v is None else f"{v:.3f}"
print(f"schedule lag ms: p50 {fmt(lag['p50'])}  p99 {fmt(lag['p99'])}  max {fmt(lag['max'])}")
p99 = lag["p99"]
print(f"schedule lag p99       {fmt(p99)} ms   goal < 2 ms  {'PASS' if p99 is not None and p99 < 2 else 'FAIL'}")
PY
