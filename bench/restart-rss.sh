#!/usr/bin/env bash
# Does the server's memory follow its data or its uptime?
#
#   bench/restart-rss.sh                 # 120 s of closed-loop chat
#   LOAD=30s NO_BUILD=1 bench/restart-rss.sh
#
# Starts a server on a new data folder and stops it (the first start
# creates the admin account: its password hash takes memory the allocator
# keeps), starts it again and prints its idle RSS, loads it with `loadtest
# chat` (100 visitors, 10 agents, as fast as acks come back), prints RSS
# after the load, stops it with SIGTERM, starts it once more on the same
# folder and prints its idle RSS. The two idle starts differ only in the
# data; the difference divided by the messages stored is what the store
# keeps in memory per message whatever the uptime (sled 0.34 rebuilds its
# page table from the log at start).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
load=${LOAD:-120s}
if [ -z "${NO_BUILD:-}" ]; then
  (cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p switchboard-server -p switchboard-loadtest)
fi
work=$(mktemp -d /tmp/switchboard-restart-rss.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

# Starts the server (loopback, any free port, the load test's lifted
# limits); sets $pid and $url.
start() {
  SWITCHBOARD_ADMIN_PASSWORD=loadtest-admin-pw SWITCHBOARD_MESSAGES_PER_SEC=0 \
    SWITCHBOARD_IP_MESSAGES_PER_SEC=0 SWITCHBOARD_IP_NEW_CONVERSATIONS_PER_MIN=0 \
    SWITCHBOARD_MAX_CONNECTIONS_PER_IP=0 \
    "$target/release/switchboard" serve --listen 127.0.0.1:0 --data "$work/data" \
    >"$work/out-$1.log" 2>"$work/err-$1.log" &
  pid=$!
  for _ in $(seq 300); do
    url=$(sed -n 's/^switchboard listening on http:\/\///p' "$work/out-$1.log")
    [ -n "$url" ] && return
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$work/err-$1.log" >&2
  exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
stop() {
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  pid=
}

start first
sleep 3
echo "first start, idle: $(rss_kib) KiB"
stop
start empty
sleep 5
fresh=$(rss_kib)
echo "no messages, idle: $fresh KiB"
"$target/release/loadtest" chat --target "ws://$url/ws" --server-pid "$pid" \
  --visitors 100 --agents 10 --rate 0 --duration "$load" --quiet >"$work/load.txt" 2>&1
grep -E "^(messages|exactly-once|result)" "$work/load.txt"
stored=$(sed -n 's/^messages: .* \([0-9]*\) acked.*/\1/p' "$work/load.txt")
sleep 3
echo "after the load:    $(rss_kib) KiB"
stop
echo "data folder:       $(du -sk "$work/data" | cut -f1) KiB"
start again
sleep 5
again=$(rss_kib)
echo "restarted, idle:   $again KiB"
stop
if [ -n "$stored" ] && [ "$stored" -gt 0 ]; then
  awk -v a="$again" -v f="$fresh" -v n="$stored" \
    'BEGIN { printf "restarted - empty: %d KiB for %d messages = %.1f bytes per stored message\n", a - f, n, (a - f) * 1024 / n }'
fi
