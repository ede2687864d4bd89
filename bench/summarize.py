#!/usr/bin/env python3
"""Turns a folder of `loadtest --json` reports (written by bench/run.sh) into
docs/benchmarks.md (medians, ranges, ratios, the slow-reader comparison,
commands, versions, machine) and an SVG latency plot. Standard library only.

    summarize.py RESULTS_DIR OUT_MD OUT_SVG
"""
import json
import statistics
import sys
from pathlib import Path

SYSTEMS = ["switchboard", "bun", "node-ws", "echo"]
LABELS = {"switchboard": "Switchboard", "bun": "Bun relay", "node-ws": "Node ws relay", "echo": "tokio-tungstenite echo"}

# (point, label, path into the report, unit, better)
METRICS = [
    ("idle", "server RSS per idle connection", ("server", "rss_per_connection_bytes"), "KiB", "lower"),
    ("peak", "delivered messages/s (closed loop)", ("throughput", "delivered_per_s"), "msg/s", "higher"),
    ("peak", "deliveries per server CPU-second", ("server", "deliveries_per_cpu_second"), "msg/CPU-s", "higher"),
    ("load", "visitor → agent p50 at equal offered load", ("latency_ms", "visitor_to_agent", "p50"), "ms", "lower"),
    ("load", "visitor → agent p99 at equal offered load", ("latency_ms", "visitor_to_agent", "p99"), "ms", "lower"),
    ("load", "send → ack p99 at equal offered load (echo: round trip)", ("latency_ms", "send_to_ack", "p99"), "ms", "lower"),
    ("load", "deliveries per server CPU-second at equal load", ("server", "deliveries_per_cpu_second"), "msg/CPU-s", "higher"),
]

# Switchboard at the load point without (slowbase) and with (slow) visitors that stop reading.
SLOW_METRICS = [
    ("visitor → agent p50", ("latency_ms", "visitor_to_agent", "p50"), "ms"),
    ("visitor → agent p99", ("latency_ms", "visitor_to_agent", "p99"), "ms"),
    ("agent → visitor p50", ("latency_ms", "agent_to_visitor", "p50"), "ms"),
    ("agent → visitor p99", ("latency_ms", "agent_to_visitor", "p99"), "ms"),
    ("send → ack p99", ("latency_ms", "send_to_ack", "p99"), "ms"),
    ("delivered messages/s", ("throughput", "delivered_per_s"), "msg/s"),
    ("deliveries per server CPU-second", ("server", "deliveries_per_cpu_second"), "msg/CPU-s"),
]


def dig(report, path):
    v = report
    for k in path:
        if not isinstance(v, dict) or v.get(k) is None:
            return None
        v = v[k]
    return v


def load(results):
    runs = {}
    for f in sorted(Path(results).glob("*.json")):
        sys_name, point, _ = f.stem.split("--")
        runs.setdefault((sys_name, point), []).append(json.loads(f.read_text()))
    return runs


def values(runs, system, point, path, unit):
    out = []
    for r in runs.get((system, point), []):
        if path[0] == "latency_ms" and not dig(r, path[:2] + ("count",)):
            continue  # nothing measured (e.g. the echo server has no agent side)
        v = dig(r, path)
        if v is not None:
            out.append(v / 1024 if unit == "KiB" else v)
    return out


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(vals):
    if not vals:
        return "–"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(vals))}–{fmt(max(vals))})"


def ratio(a, b):
    if a and b and statistics.median(b):
        return f"{statistics.median(a) / statistics.median(b):.2f}"
    return "–"


def slow_section(runs):
    base, slow = runs.get(("switchboard", "slowbase"), []), runs.get(("switchboard", "slow"), [])
    if not base or not slow:
        return []
    n = dig(slow[0], ("config", "slow_readers"))
    # What the slow-reader points gave the server beyond what every run gets.
    common = set(dig((runs.get(("switchboard", "load")) or [{}])[0], ("config", "server_env")) or [])
    env = " ".join(e for e in dig(slow[0], ("config", "server_env")) or [] if e not in common) or "none"
    lines = ["", "## Slow readers (Switchboard)", "",
             f"The `load` workload twice, with the server's kernel send buffer capped ({env}) in both: "
             f"without, then with {n} extra visitors that write a few messages, stop reading their socket "
             "(connection held open) and get flooded by the agents. Latencies are the normal visitors' only.", "",
             f"| metric | without | with {n} slow readers | with ÷ without |", "|---|---|---|---|"]
    for label, path, unit in SLOW_METRICS:
        a, b = values(runs, "switchboard", "slowbase", path, unit), values(runs, "switchboard", "slow", path, unit)
        lines.append(f"| {label} ({unit}) | {cell(a)} | {cell(b)} | {ratio(b, a)} |")
    outcomes, cut, served = {}, [], []
    for r in slow:
        sr = r.get("slow_readers") or {}
        for k, v in (sr.get("outcomes") or {}).items():
            outcomes[k] = outcomes.get(k, 0) + v
        cut.append((sr.get("outcomes") or {}).get("closed 4000", 0))
        served.append(sr.get("bytes_on_wake", 0) / 1024 / max(sr.get("stopped_reading", 0), 1))
    normal_4000 = sum((r.get("close_codes") or {}).get("4000", 0) for r in slow)
    lines += ["", f"How the slow readers ended, over {len(slow)} run{'s' if len(slow) > 1 else ''}: "
              + ", ".join(f"{k} ×{v}" for k, v in sorted(outcomes.items()))
              + f"; per run, {cell(cut)} of {n} cut off with 4000; "
              f"{cell(served)} KiB per reader still on its way when it woke at the end. "
              f"Normal sessions closed with 4000: {normal_4000}."]
    return lines


def markdown(runs, meta, present):
    lines = ["# Benchmarks", "",
             "Written by `bench/run.sh` (do not edit by hand). Each cell is the median of the runs, "
             "with the range in parentheses. Every run is a fresh `loadtest --spawn` of that system "
             "on this machine, loopback only.", ""]
    head = "| metric | " + " | ".join(LABELS[s] for s in present) + " |"
    lines += [head, "|---" * (len(present) + 1) + "|"]
    for point, label, path, unit, _ in METRICS:
        row = [cell(values(runs, s, point, path, unit)) for s in present]
        lines.append(f"| {label} ({unit}) | " + " | ".join(row) + " |")
    lines += ["", "## Ratios (Switchboard ÷ peer, medians)", ""]
    peers = [s for s in present if s != "switchboard"]
    lines += ["| metric | better | " + " | ".join(LABELS[p] for p in peers) + " |", "|---|---" + "|---" * len(peers) + "|"]
    for point, label, path, unit, better in METRICS:
        sb = values(runs, "switchboard", point, path, unit)
        row = [ratio(sb, values(runs, p, point, path, unit)) for p in peers]
        lines.append(f"| {label} | {better} | " + " | ".join(row) + " |")
    lines += slow_section(runs)
    failed = [(s, p, i) for (s, p), rs in runs.items() for i, r in enumerate(rs) if not r.get("passed")]
    lines += ["", "## Exactly-once", ""]
    if failed:
        lines.append("Runs that lost or duplicated messages (or hit the deadline): " + ", ".join(f"{s}/{p}#{i + 1}" for s, p, i in failed))
    else:
        lines.append("Every run passed: no acknowledged message was lost or duplicated.")
    lines += ["", "![latency](benchmarks-latency.svg)", "", "## Commands, versions, machine", "", "```", meta.strip(), "```", ""]
    return "\n".join(lines)


def svg(runs, present):
    groups = [(s, "load", LABELS[s]) for s in present]
    if runs.get(("switchboard", "slow")):
        n = dig(runs[("switchboard", "slow")][0], ("config", "slow_readers"))
        groups += [("switchboard", "slowbase", "SB, small sndbuf"), ("switchboard", "slow", f"SB + {n} slow readers")]
    w, h, left, bottom, top = max(720, 150 * len(groups) + 90), 380, 70, 60, 40
    series = []
    for s, point, label in groups:
        p50 = values(runs, s, point, ("latency_ms", "visitor_to_agent", "p50"), "ms")
        p99 = values(runs, s, point, ("latency_ms", "visitor_to_agent", "p99"), "ms")
        series.append((label, p50, p99))
    peak = max([max(p99) for _, _, p99 in series if p99] + [1.0])
    scale = (h - bottom - top) / (peak * 1.1)
    group = (w - left - 20) / max(len(series), 1)
    bar = group / 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">visitor → agent latency at equal offered load (ms; bar = median, line = range)</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - 20}" y2="{h - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>']
    for k in range(6):
        v = peak * 1.1 * k / 5
        y = h - bottom - v * scale
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{fmt(v)}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{w - 20}" y2="{y}" stroke="#ddd"/>')
    for i, (s, p50, p99) in enumerate(series):
        x0 = left + i * group + group / 4
        for j, (vals, colour, name) in enumerate([(p50, "#4c78a8", "p50"), (p99, "#e45756", "p99")]):
            if not vals:
                continue
            x = x0 + j * (bar + 4)
            med = statistics.median(vals)
            y = h - bottom - med * scale
            parts.append(f'<rect x="{x}" y="{y}" width="{bar}" height="{med * scale}" fill="{colour}"><title>{name} {fmt(med)} ms</title></rect>')
            lo, hi = h - bottom - min(vals) * scale, h - bottom - max(vals) * scale
            cx = x + bar / 2
            parts.append(f'<line x1="{cx}" y1="{lo}" x2="{cx}" y2="{hi}" stroke="black"/>')
            parts.append(f'<text x="{cx}" y="{y - 4}" text-anchor="middle">{fmt(med)}</text>')
        parts.append(f'<text x="{x0 + bar}" y="{h - bottom + 18}" text-anchor="middle">{s}</text>')
    parts.append(f'<rect x="{w - 150}" y="{top}" width="12" height="12" fill="#4c78a8"/><text x="{w - 132}" y="{top + 11}">p50</text>')
    parts.append(f'<rect x="{w - 100}" y="{top}" width="12" height="12" fill="#e45756"/><text x="{w - 82}" y="{top + 11}">p99</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    results, out_md, out_svg = sys.argv[1:4]
    runs = load(results)
    present = [s for s in SYSTEMS if any(k[0] == s for k in runs)]
    meta_path = Path(results) / "meta.txt"
    meta = meta_path.read_text() if meta_path.exists() else ""
    Path(out_md).write_text(markdown(runs, meta, present))
    Path(out_svg).write_text(svg(runs, present))


if __name__ == "__main__":
    main()
