#!/usr/bin/env bash
# pcap import: mynah vs tshark on the same large file, side by side, in one run.
#
#   bench/pcap_import.sh [SIZE_MB]     (default 600)
#
# Builds a pcap of SIZE_MB by repeating ../shared/data/traffic/pcap/shop_capture.pcap with renumbered
# clients, then times `mynah inspect` and `tshark -r FILE -Y http.request -T fields -e http.request.uri`
# (with `-d tcp.port==18301,http` so that tshark dissects the capture's port as HTTP, as mynah does)
# on it and prints MB/s, exchanges/s, peak RSS and the ratios. Needs tshark (apt-get install tshark).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-600}
out=bench/out
mkdir -p "$out"
pcap="$out/import-${size_mb}MB.pcap"
src=../shared/data/traffic/pcap/shop_capture.pcap

command -v tshark >/dev/null || { echo "tshark is missing: apt-get install -y tshark" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install -y time" >&2; exit 1; }

[ -f "$pcap" ] || python3 bench/make_pcap.py "$src" 18301 "$pcap" "$size_mb"
cargo build --release -q -p mynah
bytes=$(stat -c %s "$pcap")

# Runs a command, prints "seconds peak_rss_kb" from GNU time.
measure() {
  local log="$out/time.log"
  /usr/bin/time -f "%e %M" -o "$log" "$@" >"$out/stdout" 2>"$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
  cat "$log"
}

# Warm the page cache so both tools read from memory.
cat "$pcap" >/dev/null

read -r m_secs m_rss < <(measure target/release/mynah inspect --json "$pcap")
m_ex=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["exchanges"])' "$out/stdout")
read -r t_secs t_rss < <(measure tshark -r "$pcap" -d tcp.port==18301,http -Y http.request -T fields -e http.request.uri)
t_ex=$(wc -l <"$out/stdout")

python3 - "$bytes" "$m_secs" "$m_rss" "$m_ex" "$t_secs" "$t_rss" "$t_ex" <<'PY'
import sys
b, ms, mr, me, ts, tr, te = sys.argv[1:]
b = int(b); ms = max(float(ms), 0.01); ts = max(float(ts), 0.01)
mb = b / 1e6
print(f"file: {mb:.0f} MB")
print(f"{'tool':<8} {'seconds':>8} {'MB/s':>8} {'requests':>10} {'req/s':>10} {'peak RSS':>10}")
print(f"{'mynah':<8} {ms:>8.2f} {mb/ms:>8.1f} {int(me):>10} {int(me)/ms:>10.0f} {int(mr)/1024:>8.0f}MB")
print(f"{'tshark':<8} {ts:>8.2f} {mb/ts:>8.1f} {int(te):>10} {int(te)/ts:>10.0f} {int(tr)/1024:>8.0f}MB")
print(f"ratio: mynah is {ts/ms:.1f}x tshark's rate (goal >= 20x); RSS {int(mr)/1024:.0f} MB (goal < 256 MB)")
PY
