#!/usr/bin/env bash
# A quick side-by-side of small GETs through a TCP name (relay + `expose
# tcp:`) with tokio's default workers and with one, and through rathole,
# alternated round by round: for trying a change to the TCP path without
# the whole relay bench. nginx serves 1 KiB; wrk -t1.
#
#   bash relay/benches/compare-tcp.sh            # a new connection per request
#   MODE=keep bash relay/benches/compare-tcp.sh  # kept-alive connections
#
# C (16) sets the connections, S (4) the seconds per run. Needs nginx,
# wrk and rathole built by the relay bench (target/bench-cache/bin);
# PTTH_BENCH_RELAY=PATH runs another build of ptth-relay.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${PTTH_BENCH_RELAY:-}" ]; then
  cargo build --quiet --release -p ptth-relay
fi
bin=$(realpath "${PTTH_BENCH_RELAY:-target/release/ptth-relay}")
rathole=$(realpath target/bench-cache/bin/rathole)
dir=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2> /dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/bench"
head -c 1024 /dev/zero | tr '\0' x > "$dir/bench/small.html"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
nginx_port=$(free_port)
cat > "$dir/nginx.conf" << NGINX
daemon off; master_process off; worker_processes 1; pid $dir/nginx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$nginx_port; root $dir; keepalive_requests 1000000; } }
NGINX
nginx -c "$dir/nginx.conf" &

relay_tcp() { # PORT [WORKERS]: a relay whose one TCP port is PORT, expose behind it
  local port=$1 workers=${2:-}
  printf '[connections]\nper-client = 100000\n[tcp]\nports = "%s-%s"\nconnections-per-name = 100000\n' \
    "$port" "$port" > "$dir/relay-$port.toml"
  env ${workers:+TOKIO_WORKER_THREADS=$workers} "$bin" serve --listen 127.0.0.1:0 \
    --config "$dir/relay-$port.toml" > "$dir/serve-$port.out" 2> /dev/null &
  for _ in $(seq 250); do grep -q listening "$dir/serve-$port.out" && break; sleep 0.02; done
  local addr
  addr=$(grep -o 'http://[0-9.:]*' "$dir/serve-$port.out")
  env ${workers:+TOKIO_WORKER_THREADS=$workers} "$bin" expose "tcp://127.0.0.1:$nginx_port" \
    --relay "$addr" --name bench > "$dir/expose-$port.out" 2> /dev/null &
  for _ in $(seq 250); do grep -q "public address" "$dir/expose-$port.out" && break; sleep 0.02; done
}
two_workers=$(free_port)
one_worker=$(free_port)
relay_tcp "$two_workers"
relay_tcp "$one_worker" 1

control=$(free_port)
visitors=$(free_port)
printf '[server]\nbind_addr = "127.0.0.1:%s"\n[server.services.bench]\ntoken = "t"\nbind_addr = "127.0.0.1:%s"\n' \
  "$control" "$visitors" > "$dir/server.toml"
printf '[client]\nremote_addr = "127.0.0.1:%s"\n[client.services.bench]\ntoken = "t"\nlocal_addr = "127.0.0.1:%s"\n' \
  "$control" "$nginx_port" > "$dir/client.toml"
"$rathole" -s "$dir/server.toml" > /dev/null 2>&1 &
sleep 0.3
"$rathole" -c "$dir/client.toml" > /dev/null 2>&1 &
for _ in $(seq 250); do curl -sf -o /dev/null "http://127.0.0.1:$visitors/bench/small.html" && break; sleep 0.02; done

headers=()
[ "${MODE:-close}" = close ] && headers=(-H "Connection: close")
echo "| round | path | req/s |"
echo "|---|---|---:|"
for round in 1 2 3; do
  for path in "relay + expose tcp::$two_workers" "the same, one worker each:$one_worker" "rathole:$visitors"; do
    name=${path%:*}
    port=${path##*:}
    rate=$(wrk -t1 -c"${C:-16}" -d"${S:-4}s" "${headers[@]}" "http://127.0.0.1:$port/bench/small.html" |
      awk '/Requests\/sec/ {print $2}')
    echo "| $round | $name | $rate |"
  done
done
