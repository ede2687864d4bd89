#!/usr/bin/env bash
# Soak: is the server's memory flat over a long run (no leak)?
#
#   bench/soak.sh                   # 10 minutes: 200 visitors at 2 msg/s, 10 agents
#   SOAK=30m bench/soak.sh          # longer
#   SOAK=1m NO_BUILD=1 bench/soak.sh --slow-readers 5   # extra loadtest flags pass through
#
# One `loadtest chat --spawn` run; the harness samples the server's RSS from
# /proc every second (the series is in the JSON report). At the end this
# prints RSS at the start and the end of the steady phase and the
# least-squares slope over it, in KiB/min, and over its second half (after
# caches and allocator pools have warmed up, which a short run mistakes for
# growth). The server's sled cache alone may grow up to 64 MiB as the data
# grows, so read a late slope against that.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
soak=${SOAK:-10m}
json=${JSON_OUT:-$here/results/soak-$(date -u +%Y%m%dT%H%M%SZ).json}
# A second-half slope below this counts as flat (64 KiB/min ≈ 4 MiB an hour).
flat=${FLAT_KIB_PER_MIN:-64}

if [ -z "${NO_BUILD:-}" ]; then
  echo "== building (release)"
  (cd "$root" && CARGO_TARGET_DIR=$target cargo build --release -q -p switchboard-server -p switchboard-loadtest)
fi
mkdir -p "$(dirname "$json")"
echo "== soak for $soak, report in $json"
status=0
"$target/release/loadtest" chat --spawn --visitors "${VISITORS:-200}" --agents "${AGENTS:-10}" \
  --rate "${RATE:-2}" --duration "$soak" --quiet --json "$json" "$@" || status=$?

python3 - "$json" "$flat" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
flat = float(sys.argv[2])
s = r["server"]
mib = lambda b: "-" if b is None else f"{b / 1048576:.1f} MiB"
kib = lambda b: "-" if b is None else f"{b / 1024:+.1f} KiB/min"
lo, hi = r["steady_window_s"]
points = [p for p in s["rss_series"] if lo <= p[0] <= hi]
print(f"steady phase: {hi - lo:.0f} s, {len(points)} RSS samples")
print(f"RSS at start of steady phase: {mib(s['rss_loaded_bytes'])}")
print(f"RSS at end of steady phase:   {mib(s['rss_end_bytes'])}  (peak {mib(s['rss_peak_bytes'])})")
print(f"slope over the steady phase:  {kib(s['rss_slope_bytes_per_minute'])}")
print(f"slope over its second half:   {kib(s['rss_slope_late_bytes_per_minute'])}")
late = s["rss_slope_late_bytes_per_minute"]
if late is not None:
    verdict = "flat" if late / 1024 < flat else "still growing"
    print(f"verdict: {verdict} (second-half slope vs {flat:g} KiB/min)")
print(f"exactly-once: {'OK' if r['delivery']['lost'] == 0 and r['delivery']['duplicated'] == 0 else 'FAILED'}; run {'passed' if r['passed'] else 'FAILED'}")
EOF
exit "$status"
