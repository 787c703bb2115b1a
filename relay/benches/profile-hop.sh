#!/usr/bin/env bash
# Where a kept-alive small GET's cost goes in `ptth-relay serve` and in
# `expose`, each per request: CPU (user, system) and context switches
# under wrk's load; syscalls with their mean bytes (strace); instructions
# and heap allocations (callgrind, which slows the process it watches, so
# its counts are divided by the requests of a run under it).
#
#   bash relay/benches/profile-hop.sh [CONNECTIONS] [SECONDS]
#
# nginx serves the bench's 1 KiB small.html; wrk -t1 loads the relay.
# PTTH_BENCH_RELAY=PATH profiles another build (before and after a
# change). Needs nginx, wrk, strace and valgrind (apt-get install
# nginx-light wrk strace valgrind). docs/performance.md, "The relay's hop,
# per request", has one run's figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-64}
seconds=${2:-5}
if [ -z "${PTTH_BENCH_RELAY:-}" ]; then
  cargo build --quiet --release -p ptth-relay
fi
relay_bin=$(realpath "${PTTH_BENCH_RELAY:-target/release/ptth-relay}")
dir=$(mktemp -d)
cleanup() {
  pkill -P $$ 2> /dev/null || true
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2> /dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_line() { # FILE TEXT: waits for TEXT in FILE, prints that line
  for _ in $(seq 1500); do
    if grep -q "$2" "$1" 2> /dev/null; then grep -m1 "$2" "$1"; return; fi
    sleep 0.02
  done
  echo "no '$2' in $1" >&2
  exit 1
}

# The origin: the bench's nginx, one process, no logs.
mkdir -p "$dir/www/bench"
head -c 1024 /dev/zero | tr '\0' x > "$dir/www/bench/small.html"
origin=$(free_port)
cat > "$dir/nginx.conf" << EOF
master_process off; daemon off; pid $dir/nginx.pid; error_log stderr;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$origin; root $dir/www; } }
EOF
nginx -c "$dir/nginx.conf" 2> "$dir/nginx.log" &

# start [relay|expose]: the relay and expose, the one named under
# callgrind; sets relay_pid, expose_pid and url.
start() {
  local relay_wrap=() expose_wrap=()
  local callgrind=(valgrind --tool=callgrind "--callgrind-out-file=$dir/callgrind.%p")
  case "${1:-}" in
    relay) relay_wrap=("${callgrind[@]}") ;;
    expose) expose_wrap=("${callgrind[@]}") ;;
  esac
  rm -f "$dir/relay.out" "$dir/expose.out"
  "${relay_wrap[@]}" "$relay_bin" serve --listen 127.0.0.1:0 > "$dir/relay.out" 2> "$dir/relay.err" &
  relay_pid=$!
  local relay
  relay=$(wait_line "$dir/relay.out" "listening on" | sed 's/listening on //')
  "${expose_wrap[@]}" "$relay_bin" expose "$origin" --relay "$relay" --name bench \
    > "$dir/expose.out" 2> "$dir/expose.err" &
  expose_pid=$!
  wait_line "$dir/expose.out" "public URL" > /dev/null
  url="$relay/bench/small.html"
  wrk -t1 -c"$connections" -d1s "$url" > /dev/null # warm
}

stop() {
  kill -TERM "$relay_pid" "$expose_pid" 2> /dev/null || true
  wait "$relay_pid" "$expose_pid" 2> /dev/null || true
}

# wrk's request count for a run of SECONDS.
load() {
  wrk -t1 -c"$connections" -d"${1}s" "$url" | awk '/requests in/ { print $1 }'
}

# user and system ticks (1/100 s), and context switches, of PID's threads.
usage() {
  local ticks switches=0
  ticks=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12], f[13] }' "/proc/$1/stat")
  for status in /proc/"$1"/task/*/status; do
    switches=$((switches + $(awk '/ctxt_switches/ { n += $2 } END { print n }' "$status")))
  done
  echo "$ticks $switches"
}

echo "# ptth-relay serve + expose, wrk -t1 -c$connections kept alive, per request"
echo

# 1. CPU and context switches.
start
read -r ru0 rs0 rc0 <<< "$(usage "$relay_pid")"
read -r eu0 es0 ec0 <<< "$(usage "$expose_pid")"
requests=$(load "$seconds")
read -r ru1 rs1 rc1 <<< "$(usage "$relay_pid")"
read -r eu1 es1 ec1 <<< "$(usage "$expose_pid")"
echo "$requests requests in $seconds s"
echo
echo "| process | user µs | system µs | context switches |"
echo "|---|---:|---:|---:|"
row() { awk -v w="$1" -v n="$requests" -v u="$2" -v s="$3" -v c="$4" \
  'BEGIN { printf "| %s | %.1f | %.1f | %.2f |\n", w, u * 1e4 / n, s * 1e4 / n, c / n }'; }
row relay $((ru1 - ru0)) $((rs1 - rs0)) $((rc1 - rc0))
row expose $((eu1 - eu0)) $((es1 - es0)) $((ec1 - ec0))
echo

# 2. Syscalls and their mean bytes.
for who in relay expose; do
  pid_var="${who}_pid"
  strace -f -q -e trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,epoll_wait,futex \
    -p "${!pid_var}" -o "$dir/$who.strace" &
done
sleep 0.5
requests=$(load 3)
pkill -INT -P $$ strace || true
sleep 0.5
echo "| process | syscall | per request | mean bytes |"
echo "|---|---|---:|---:|"
for who in relay expose; do
  python3 - "$dir/$who.strace" "$requests" "$who" << 'EOF'
import re, sys
counts, sizes = {}, {}
for line in open(sys.argv[1]):
    # Threads interleave: a call may be cut into "unfinished" and
    # "resumed" lines, the second with the result.
    m = re.match(r"\d+\s+(\w+)\(.*\)\s+=\s+(-?\d+)", line) or re.match(
        r"\d+\s+<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+)", line
    )
    if not m:
        continue
    name, result = m.group(1), int(m.group(2))
    counts[name] = counts.get(name, 0) + 1
    if name not in ("epoll_wait", "futex") and result > 0:
        sizes.setdefault(name, []).append(result)
n = int(sys.argv[2])
for name in sorted(counts, key=counts.get, reverse=True):
    got = sizes.get(name, [])
    mean = f"{sum(got) / len(got):.0f}" if got else "-"
    print(f"| {sys.argv[3]} | {name} | {counts[name] / n:.2f} | {mean} |")
EOF
done
stop
echo

# 3. Instructions and heap allocations, under callgrind.
echo "| process | instructions | allocations |"
echo "|---|---:|---:|"
for who in relay expose; do
  start "$who"
  callgrind_control -z > /dev/null
  requests=$(load "$seconds")
  callgrind_control -d > /dev/null
  stop
  file=$(ls -t "$dir"/callgrind.*.1 | head -1)
  total=$(callgrind_annotate "$file" 2> /dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  # Calls into the global allocator: the callers' counts of __rust_alloc
  # (and its zeroed and realloc kin).
  allocations=$(callgrind_annotate --tree=caller --inclusive=yes --threshold=100 "$file" 2> /dev/null | python3 -c '
import re, sys
# In a caller tree each function line (with "*") comes after the lines of
# its callers (with "<"), each giving its count of calls.
total, callers = 0, []
for line in sys.stdin:
    if re.search(r"\*\s+\S*__rust_(alloc|alloc_zeroed|realloc) ", line):
        total += sum(callers)
    m = re.search(r"<.*\(([\d,]+)x\)", line)
    callers = callers + [int(m.group(1).replace(",", ""))] if m else []
print(total)')
  rm -f "$dir"/callgrind.*
  echo "| $who | $((total / requests)) | $((allocations / requests)) |"
done
