#!/usr/bin/env bash
# Runs the whole comparison: Switchboard against the Bun and Node `ws` relays
# (bench/peers/), same harness (loadtest), same workloads, same machine, and
# writes docs/benchmarks.md and docs/benchmarks-latency.svg.
#
#   bench/run.sh                 # everything, REPEAT=5 runs per point
#   REPEAT=1 QUICK=1 bench/run.sh  # a fast look (smaller points, one run each)
#   SYSTEMS="switchboard bun" MD_OUT=/tmp/b.md SVG_OUT=/tmp/b.svg bench/run.sh
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
  idle_visitors=${IDLE_VISITORS:-5000}; chat_visitors=${CHAT_VISITORS:-100}; duration=${DURATION:-15s}
fi
agents=${AGENTS:-10}
# Offered load for the latency comparison, messages per second per visitor.
load_rate=${LOAD_RATE:-5}

echo "== building (release)"
(cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p switchboard-server -p switchboard-loadtest)
(cd "$here/echo" && CARGO_TARGET_DIR=$target cargo build --release -q --locked)
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

for i in $(seq 1 "$repeat"); do
  for sys in $systems; do
    run_point "$sys" idle "$i" idle --visitors "$idle_visitors" --ramp 10s --duration 3s
    run_point "$sys" peak "$i" chat --visitors "$chat_visitors" --agents "$agents" --rate 0 --duration "$duration"
    run_point "$sys" load "$i" chat --visitors "$chat_visitors" --agents "$agents" --rate "$load_rate" --duration "$duration"
  done
done

{
  echo "commands:"
  echo "  idle: loadtest idle --visitors $idle_visitors --ramp 10s --duration 3s --spawn --server-bin SYSTEM"
  echo "  peak: loadtest chat --visitors $chat_visitors --agents $agents --rate 0 --duration $duration --spawn --server-bin SYSTEM"
  echo "  load: loadtest chat --visitors $chat_visitors --agents $agents --rate $load_rate --duration $duration --spawn --server-bin SYSTEM"
  echo "  (echo: the same with --raw; it has no agents, so only the round trip, send -> ack, is measured)"
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
} > "$out/meta.txt"

md=${MD_OUT:-$root/docs/benchmarks.md}
svg=${SVG_OUT:-$root/docs/benchmarks-latency.svg}
python3 "$here/summarize.py" "$out" "$md" "$svg"
echo "== wrote $md and $svg"
