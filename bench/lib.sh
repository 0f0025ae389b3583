# Helpers shared by the run_*.sh benchmarks (sourced, not run). They assume `set -euo pipefail`,
# the repository root as the working directory, and a `$work` temp directory set by the caller.

# Builds the release binaries the benchmarks run.
bench_build() {
  echo "building release binaries (cargo build --release -p mynah -p mynah-testkit)..." >&2
  cargo build --release -q -p mynah -p mynah-testkit
}

# A free TCP port on 127.0.0.1 (small race: the port is released before the server binds it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:$1 accepts connections (up to 10 s).
wait_port() {
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1 after 10 s" >&2
  return 1
}

# Starts nginx in the foreground-mode (daemon off) with prefix $1 whose nginx.conf the caller wrote,
# under the command prefix given in the remaining arguments (e.g. `taskset -c 0`). Sets $nginx_pid.
start_nginx() {
  local prefix=$1; shift
  mkdir -p "$prefix/logs"
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx is missing: apt-get install -y nginx" >&2; exit 1; }
  local bin; bin=$(command -v nginx || echo /usr/sbin/nginx)
  "$@" "$bin" -p "$prefix" -c nginx.conf -e "$prefix/logs/error.log" &
  nginx_pid=$!
}

# Writes $work/ng/nginx.conf for the single-worker nginx the load benchmarks drive (keep-alive long
# enough that no connection is ever closed during a run) listening on 127.0.0.1:$1, with the
# http-level access-log lines $2 and the server's locations $3; starts it on core 0 and waits until
# it listens. Sets $nginx_pid.
start_bench_nginx() {
  local port=$1 log=$2 locations=$3
  mkdir -p "$work/ng"
  cat >"$work/ng/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
$log
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$port;
$locations
  }
}
EOF
  start_nginx "$work/ng" taskset -c 0
  wait_port "$port"
}

# Stops a background process by pid (if still running) and waits for it.
stop_pid() {
  local pid=${1:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Runs a command with stdout/stderr to $1/$2; sets $cpu_s to the user+sys CPU seconds of the command
# (and its children) and returns its exit status. Uses GNU time when installed, else bash's `times`
# in a subshell (also when GNU_TIME names a missing file, to test that path).
cpu_time() {
  local out=$1 err=$2 rc=0; shift 2
  if [ -x "${GNU_TIME:-/usr/bin/time}" ]; then
    "${GNU_TIME:-/usr/bin/time}" -f "%U %S" -o "$work/cpu.time" "$@" >"$out" 2>"$err" || rc=$?
  else
    ( "$@" >"$out" 2>"$err"; rc=$?; times >"$work/cpu.times"; exit $rc ) || rc=$?  # no pipe: `times` must run in this subshell
    tail -n 1 "$work/cpu.times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1]*60+u[2], s[1]*60+s[2] }' >"$work/cpu.time"
  fi
  cpu_s=$(tail -n 1 "$work/cpu.time" | awk '{ print $1 + $2 }')
  return $rc
}

# The 1-minute load average.
load1() { cut -d' ' -f1 /proc/loadavg; }

# Busy CPU seconds of core $1 since boot (user+nice+system+irq+softirq+steal from /proc/stat).
core_busy() {
  awk -v c="cpu$1" -v hz="$(getconf CLK_TCK)" '$1 == c { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
