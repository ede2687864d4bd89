#!/usr/bin/env bash
# Runs the whole comparison: Switchboard against the Bun and Node `ws` relays
# (bench/peers/) and a plain tokio-tungstenite echo, same harness (loadtest),
# same workloads, same machine, and writes docs/benchmarks.md and
# docs/benchmarks-latency.svg.
#
#   bench/run.sh                 # everything, REPEAT=5 runs per point
#   REPEAT=1 QUICK=1 bench/run.sh  # a fast look (smaller points, one run each)
#   SYSTEMS="switchboard bun" MD_OUT=/tmp/b.md SVG_OUT=/tmp/b.svg bench/run.sh
#
# Points (see bench/README.md): idle, peak, load for every system; slowbase
# and slow (the load point without / with SLOW_READERS visitors that stop
# reading) for Switchboard only.
#
# Every point is a `loadtest --spawn` run: each system is started fresh on a
# temporary data folder for every run and stopped after it. Loopback only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
repeat=${REPEAT:-5}
systems=${SYSTEMS:-"switchboard bun node-ws echo"}

if [ -n "${QUICK:-}" ]; then
  idle_visitors=${IDLE_VISITORS:-1000}; chat_visitors=${CHAT_VISITORS:-20}; duration=${DURATION:-5s}
else
  # 19k: the issue's target point. One process may open ~19,990 files, and
  # both the server and the harness hold one socket per connection.
  idle_visitors=${IDLE_VISITORS:-19000}; chat_visitors=${CHAT_VISITORS:-100}; duration=${DURATION:-15s}
fi
if [ "$idle_visitors" -gt 19500 ]; then
  echo "IDLE_VISITORS=$idle_visitors: one process cannot hold more than ~19.5k sockets here (20,000 files)" >&2
  exit 2
fi
# At most ~1,000 handshakes a second: a connect storm measures the listen backlog, not the server.
idle_ramp=${IDLE_RAMP:-$(( (idle_visitors + 999) / 1000 ))s}
agents=${AGENTS:-10}
# Offered load for the latency comparison, messages per second per visitor.
load_rate=${LOAD_RATE:-5}
# The slow-reader point: this many extra visitors stop reading, agents write
# each SLOW_FLOOD extra messages (50/s), and the server's kernel send buffer
# is capped (SLOW_SNDBUF bytes, in both slowbase and slow) so that their
# queues fill within the run instead of after megabytes of kernel buffering.
slow_readers=${SLOW_READERS:-5}
slow_flood=${SLOW_FLOOD:-1000}
slow_sndbuf=${SLOW_SNDBUF:-16384}

echo "== building (release)"
(cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p switchboard-server -p switchboard-loadtest)
case " $systems " in *" echo "*) (cd "$here/echo" && CARGO_TARGET_DIR=$target cargo build --release -q --locked) ;; esac
loadtest=$target/release/loadtest
for peer in bun node-ws; do
  case " $systems " in *" $peer "*) (cd "$here/peers/$peer" && npm ci --no-audit --no-fund --silent) ;; esac
done

server_bin() {
  case $1 in
    switchboard) echo "$target/release/switchboard" ;;
    echo) echo "$target/release/echo" ;;
    *) echo "$here/peers/$1/serve" ;;
  esac
}

mkdir -p "$out"
echo "== results in $out"
# Other work on this machine skews every figure: note how busy it was.
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
run_point() { # system point i args...
  local sys=$1 point=$2 i=$3; shift 3
  local file="$out/$sys--$point--$i.json"
  # The echo server speaks no Switchboard protocol: frames go out and come back.
  local raw=(); [ "$sys" = echo ] && raw=(--raw)
  echo "-- $sys $point #$i: loadtest $* ${raw[*]}"
  if ! "$loadtest" "$@" "${raw[@]}" --spawn --server-bin "$(server_bin "$sys")" --quiet --json "$file" > "$out/$sys--$point--$i.txt" 2>&1; then
    echo "   FAILED (see $out/$sys--$point--$i.txt)"
  fi
}

chat=(chat --visitors "$chat_visitors" --agents "$agents" --duration "$duration")
slow_env=(--server-env "SWITCHBOARD_SOCKET_SEND_BUFFER_BYTES=$slow_sndbuf")
for i in $(seq 1 "$repeat"); do
  for sys in $systems; do
    run_point "$sys" idle "$i" idle --visitors "$idle_visitors" --ramp "$idle_ramp" --duration 3s
    run_point "$sys" peak "$i" "${chat[@]}" --rate 0
    run_point "$sys" load "$i" "${chat[@]}" --rate "$load_rate"
    if [ "$sys" = switchboard ] && [ "$slow_readers" -gt 0 ]; then
      run_point "$sys" slowbase "$i" "${chat[@]}" --rate "$load_rate" "${slow_env[@]}"
      run_point "$sys" slow "$i" "${chat[@]}" --rate "$load_rate" "${slow_env[@]}" --slow-readers "$slow_readers" --slow-flood "$slow_flood"
    fi
  done
done

{
  echo "commands:"
  echo "  idle: loadtest idle --visitors $idle_visitors --ramp $idle_ramp --duration 3s --spawn --server-bin SYSTEM"
  echo "  peak: loadtest ${chat[*]} --rate 0 --spawn --server-bin SYSTEM"
  echo "  load: loadtest ${chat[*]} --rate $load_rate --spawn --server-bin SYSTEM"
  echo "  (echo: the same with --raw; it has no agents, so only the round trip, send -> ack, is measured)"
  echo "  slowbase (switchboard): loadtest ${chat[*]} --rate $load_rate ${slow_env[*]} --spawn"
  echo "  slow (switchboard): the same + --slow-readers $slow_readers --slow-flood $slow_flood"
  echo "repeat: $repeat"
  echo "versions:"
  echo "  switchboard: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown) ($("$target/release/switchboard" --version 2>/dev/null || echo '?'))"
  echo "  rustc: $(rustc --version)"
  echo "  node: $(node --version)"
  echo "  ws: $(node -p "require('$here/peers/node-ws/node_modules/ws/package.json').version" 2>/dev/null || echo '?')"
  echo "  bun: $("$here/peers/bun/node_modules/.bin/bun" --version 2>/dev/null || echo '?')"
  echo "  tokio-tungstenite (echo): $(grep -A1 'name = "tokio-tungstenite"' "$here/echo/Cargo.lock" | sed -n 's/version = //p' | tr -d '"')"
  echo "machine:"
  echo "  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs) ($(nproc) cores available)"
  echo "  memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
  echo "  kernel: $(uname -r)"
  echo "  open files: soft $(ulimit -Sn), hard $(ulimit -Hn)"
  echo "  load average (1, 5, 15 min): $loadavg_before before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after"
} > "$out/meta.txt"

md=${MD_OUT:-$root/docs/benchmarks.md}
svg=${SVG_OUT:-$root/docs/benchmarks-latency.svg}
python3 "$here/summarize.py" "$out" "$md" "$svg"
echo "== wrote $md and $svg"
