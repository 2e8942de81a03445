#!/usr/bin/env python3
"""Turns a benchmark result file into markdown tables and SVG plots (stdlib only).

    python3 bench/report.py [--in docs/bench/results.json] [--out-dir docs/bench]

Reads the JSON written by bench/bench.py and writes, into --out-dir:

  tables.md          every scenario as markdown tables: median with the
                     min-max spread and the run count; for ingest, ratios of
                     each client to the Node SDK and the Python SDK
  ingest-cpu.svg     client CPU per event, per client and event rate (log scale)
  ack-latency.svg    ack latency p50 and p99, per client and event rate (log scale)
  footprint.svg      idle RSS per client / larkgate config

The plots are hand-written SVG (no plotting library): grouped bars with
min-max whiskers and the median printed on each bar.
"""

import argparse
import html
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLIENTS = ["lark-client", "larkgate", "node-sdk", "python-sdk"]
CLIENT_LABEL = {
    "lark-client": "lark-client (Rust)",
    "larkgate": "larkgate",
    "node-sdk": "Node SDK",
    "python-sdk": "Python SDK",
}
COLORS = {
    "lark-client": "#3b6fb6",
    "larkgate": "#2e8b57",
    "node-sdk": "#d08c1f",
    "python-sdk": "#8058b0",
    "larkgate-1acct": "#2e8b57",
    "larkgate-10acct": "#58b07f",
}
RATE_CASES = [("rate_max", "max rate"), ("rate_1000", "1000 events/s"), ("rate_100", "100 events/s")]
IDLE_SUBJECTS = [
    ("larkgate-1acct", "larkgate, 1 bot"),
    ("larkgate-10acct", "larkgate, 10 bots"),
    ("lark-client", "lark-client (Rust)"),
    ("node-sdk", "Node SDK"),
    ("python-sdk", "Python SDK"),
]


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


class Data:
    def __init__(self, doc: dict):
        self.doc = doc
        self.by_key = {m["key"]: m for m in doc.get("metrics", [])}

    def get(self, scenario, subject, case, metric):
        key = ".".join(x for x in (scenario, subject, case, metric) if x)
        return self.by_key.get(key)

    def median(self, *parts):
        m = self.get(*parts)
        return None if m is None else m.get("median")

    def metrics_where(self, scenario, subject=None, case=None):
        return [m for m in self.doc.get("metrics", [])
                if m["scenario"] == scenario and (subject is None or m["subject"] == subject)
                and (case is None or m["case"] == case)]


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


def num(v, digits: int = 3) -> str:
    """A number with about `digits` significant digits, thousands separated."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v == 0:
        return "0"
    if abs(v - round(v)) < 1e-9 and abs(v) < 1e15:
        return f"{int(round(v)):,}"
    a = abs(v)
    if a >= 10 ** digits:
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(a))))
    return f"{v:,.{decimals}f}"


def tick(v) -> str:
    """An axis label: 0.1, 1, 10, 1,000."""
    return format(v, ",g")


def cell(m, digits: int = 3) -> str:
    """median (min–max) ×n."""
    if m is None or m.get("median") is None:
        return "–"
    s = num(m["median"], digits)
    if m.get("n", 0) > 1 and m["min"] != m["max"]:
        s += f" ({num(m['min'], digits)}–{num(m['max'], digits)})"
    return s


def ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.2g}×" if r < 10 else f"{r:,.0f}×"


def table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# tables.md
# ---------------------------------------------------------------------------


def tables_md(d: Data) -> str:
    doc = d.doc
    mach, ver, cfg = doc.get("machine", {}), doc.get("versions", {}), doc.get("config", {})
    runs = cfg.get("runs")
    out = ["# larkgate benchmark results", ""]
    out.append(f"Measured {doc.get('started_utc', '?')} on {mach.get('cpu_model', '?')} × {mach.get('nproc', '?')} "
               f"cores, {num((mach.get('mem_total_bytes') or 0) / 2 ** 30, 3)} GiB, Linux {mach.get('kernel', '?')}. "
               f"Commit `{(ver.get('git_commit') or '?')[:12]}`{' (with uncommitted changes)' if ver.get('git_dirty') else ''}; "
               f"{ver.get('larkgate', '')}; Node {ver.get('node', '?')} with @larksuiteoapi/node-sdk "
               f"{ver.get('node_sdk', '?')}; Python {ver.get('python_sdk_python', '?')} with lark-oapi "
               f"{ver.get('python_sdk', '?')}.")
    out.append("")
    out.append(f"Every figure is the median of {runs} run{'s' if runs != 1 else ''}"
               f"{' (quick mode: small counts)' if cfg.get('quick') else ''}, with the min–max over the runs in "
               "brackets when they differ. The platform is lark-emulator on the same machine "
               "(`--no-chat-rate-limit`), so every process shares the same cores. Generated by "
               "`bench/report.py` from `results.json`.")
    out.append("")

    # Ingest
    if d.metrics_where("ingest"):
        out += ["## Ingest: receiving and acking events", ""]
        out.append("Each client connects over the long connection with a handler that does nothing (larkgate: "
                   "group messages without a mention, stored in its inbox and dropped by policy). The emulator "
                   "pushes ~1 KiB `im.message.receive_v1` events at the given rate; CPU is the client process's "
                   "CPU time during the push divided by the events acked.")
        out.append("")
        counts = {c["case"]: c for c in cfg.get("ingest_cases", [])}
        for case, label in RATE_CASES:
            if not d.metrics_where("ingest", case=case):
                continue
            c = counts.get(case, {})
            n = f"{num(c.get('count'))} events (Python SDK {num(c.get('python_count'))})" if c else ""
            out += [f"### {label}" + (f" — {n}" if n else ""), ""]
            rows = []
            node_cpu = d.median("ingest", "node-sdk", case, "cpu_us_per_event")
            py_cpu = d.median("ingest", "python-sdk", case, "cpu_us_per_event")
            for cl in CLIENTS:
                if not d.metrics_where("ingest", cl, case):
                    continue
                cpu = d.median("ingest", cl, case, "cpu_us_per_event")
                rows.append([
                    CLIENT_LABEL[cl],
                    cell(d.get("ingest", cl, case, "acked_per_sec")),
                    cell(d.get("ingest", cl, case, "ack_p50_ms")),
                    cell(d.get("ingest", cl, case, "ack_p99_ms")),
                    cell(d.get("ingest", cl, case, "cpu_us_per_event")),
                    ratio(cpu, node_cpu),
                    ratio(cpu, py_cpu),
                    cell(d.get("ingest", cl, case, "peak_rss_mb")),
                    cell(d.get("ingest", cl, case, "non_200_acks")),
                ])
            out.append(table(["client", "acked/s", "ack p50 ms", "ack p99 ms", "CPU µs/event",
                              "CPU vs Node SDK", "CPU vs Python SDK", "peak RSS MB", "refused (non-200 acks)"], rows))
            out.append("")
        em = d.metrics_where("emulator")
        if em:
            out += ["### The emulator's own ceiling", ""]
            out.append("One more push at the maximum rate to lark-client, the cheapest client: what the emulator "
                       "itself sustains and spends (its CPU is measured by the emulator and, as a cross-check, by "
                       "the harness from /proc).")
            out.append("")
            out.append(table(["events/s", "emulator CPU µs/event", "same, from /proc"], [[
                cell(d.get("emulator", "lark-emulator", "rate_max", "events_per_sec")),
                cell(d.get("emulator", "lark-emulator", "rate_max", "cpu_us_per_event")),
                cell(d.get("emulator", "lark-emulator", "rate_max", "cpu_proc_us_per_event")),
            ]]))
            out.append("")
            rows = []
            for case, label in RATE_CASES:
                r = [label]
                for cl in CLIENTS:
                    r.append(cell(d.get("ingest", cl, case, "emulator_cpu_proc_us_per_event")))
                rows.append(r)
            out.append("Emulator CPU per event during each client's pushes (µs/event, from /proc):")
            out.append("")
            out.append(table(["rate"] + [CLIENT_LABEL[c] for c in CLIENTS], rows))
            out.append("")

    # Turn
    turn = d.metrics_where("turn")
    if turn:
        out += ["## Turn: a DM in, a reply out", ""]
        out.append("C users each send the bot one DM at the same moment. With `llm`, larkgate streams from "
                   "`bench/llm_server.py` (first token at once, 40 characters in 2 chunks 20 ms apart); with "
                   "`echo`, the built-in echo agent answers. *delivered → request*: from the emulator queueing the "
                   "event on the bot's connection to the LLM server reading the request head. *first token → "
                   "update*: from the LLM writing its first token to the first change the bot made to the chat "
                   "after it (a DM reply this short is sent as one message once the agent is done: larkgate "
                   "creates a streaming card only after 300 ms in a DM). *event → reply*: to the bot's first "
                   "message in the chat. CPU is larkgate's, divided by C.")
        out.append("")
        rows = []
        for subject in ("larkgate-llm", "larkgate-echo"):
            for case in ("c10", "c100"):
                if not d.metrics_where("turn", subject, case):
                    continue
                rows.append([
                    f"{subject.replace('larkgate-', '')}, C={case[1:]}",
                    cell(d.get("turn", subject, case, "deliver_to_request_ms_p50")),
                    cell(d.get("turn", subject, case, "deliver_to_request_ms_p99")),
                    cell(d.get("turn", subject, case, "first_token_to_update_ms_p50")),
                    cell(d.get("turn", subject, case, "first_token_to_update_ms_p99")),
                    cell(d.get("turn", subject, case, "event_to_first_reply_ms_p50")),
                    cell(d.get("turn", subject, case, "event_to_first_reply_ms_p99")),
                    cell(d.get("turn", subject, case, "cpu_ms_per_turn")),
                    cell(d.get("turn", subject, case, "api_calls_per_turn")),
                    cell(d.get("turn", subject, case, "reaction_calls_per_turn")),
                ])
        out.append(table(["agent, concurrency", "delivered → request p50 ms", "p99", "first token → update p50 ms",
                          "p99", "event → reply p50 ms", "p99", "CPU ms/turn", "API calls/turn",
                          "+ typing reaction calls/turn"], rows))
        out.append("")
        routes = sorted({m["metric"][len("calls_per_turn["):-1] for m in turn if m["metric"].startswith("calls_per_turn[")})
        if routes:
            cols = [(s, c) for s in ("larkgate-llm", "larkgate-echo") for c in ("c10", "c100")
                    if d.metrics_where("turn", s, c)]
            rows = [[f"`{r}`"] + [cell(d.get("turn", s, c, f"calls_per_turn[{r}]")) for s, c in cols] for r in routes]
            out.append("Platform API calls per turn, by route:")
            out.append("")
            out.append(table(["route"] + [f"{s.replace('larkgate-', '')} C={c[1:]}" for s, c in cols], rows))
            out.append("")

    # Idle
    if d.metrics_where("idle") or d.metrics_where("binary"):
        out += ["## Footprint", ""]
        out.append(f"Each process connected and then left idle for {num(cfg.get('idle_secs', 5))} s. larkgate's "
                   "start-up is from spawn to `/healthz` answering 200 (every bot connected, polled every 2 ms); "
                   "for the clients, from spawn to the emulator seeing the connection.")
        out.append("")
        rows = []
        for subject, label in IDLE_SUBJECTS:
            if not d.metrics_where("idle", subject):
                continue
            start = d.get("idle", subject, "", "startup_ms") or d.get("idle", subject, "", "connect_ms")
            rows.append([label, cell(start), cell(d.get("idle", subject, "", "rss_mb")),
                         cell(d.get("idle", subject, "", "peak_rss_mb")), cell(d.get("idle", subject, "", "threads")),
                         cell(d.get("idle", subject, "", "idle_cpu_pct"))])
        out.append(table(["process", "start-up / connect ms", "idle RSS MB", "peak RSS MB", "threads",
                          "idle CPU %"], rows))
        out.append("")
        rows = []
        for name in ("larkgate", "bench_ingest", "lark-emulator"):
            if d.get("binary", name, "", "size_mb"):
                rows.append([f"`{name}`", cell(d.get("binary", name, "", "size_mb")),
                             cell(d.get("binary", name, "", "stripped_mb"))])
        if rows:
            out.append("Release binaries:")
            out.append("")
            out.append(table(["binary", "size MB", "stripped MB"], rows))
            out.append("")

    # Streaming
    st = d.metrics_where("streaming")
    if st:
        subject, case = "larkgate-llm", "2000chars"
        out += ["## Streaming: one long reply", ""]
        out.append("One DM; the LLM streams 2,000 characters in 10-character chunks every 15 ms (about 3 s). "
                   "The platform allows 10 operations per second on one card (code 230020 beyond that).")
        out.append("")
        rows = [[label, cell(d.get("streaming", subject, case, metric))] for metric, label in (
            ("api_calls_per_reply", "API calls per reply (without typing reaction)"),
            ("content_updates_per_reply", "card content updates per reply"),
            ("llm_stream_s", "LLM stream duration, s"),
            ("card_span_s", "first to last card update, s"),
            ("card_updates_per_sec", "card updates per second"),
            ("max_updates_in_1s", "most chat updates in any 1 s"),
            ("first_token_to_first_update_ms", "first token → first update, ms"),
            ("last_token_to_last_update_ms", "last token → last update, ms"),
            ("rate_limit_errors", "rate-limit errors (230020, 99991400, 429)"),
            ("api_errors", "platform API errors of any kind"),
            ("cpu_ms_per_reply", "larkgate CPU per reply, ms"),
            ("text_complete", "final card holds the whole text (1 = yes)"),
        ) if d.get("streaming", subject, case, metric)]
        out.append(table(["", "value"], rows))
        out.append("")
        routes = [m for m in st if m["metric"].startswith("calls[")]
        if routes:
            out.append("By route:")
            out.append("")
            out.append(table(["route", "calls per reply"], [[f"`{m['metric'][6:-1]}`", cell(m)] for m in routes]))
            out.append("")

    notes = doc.get("notes", [])
    errors = doc.get("errors", [])
    if notes or errors:
        out += ["## Notes from the run", ""]
        for n in notes:
            out.append(f"- {n}")
        for e in errors:
            out.append(f"- error in {e['scenario']}: {e['error']}")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------

FONT = "font-family=\"-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\""


def esc(s) -> str:
    return html.escape(str(s), quote=True)


def svg_doc(width, height, body) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" {FONT} font-size="12">\n'
            f'<rect width="100%" height="100%" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n")


def nice_ticks_linear(vmax):
    if vmax <= 0:
        return [0, 1]
    step = 10 ** math.floor(math.log10(vmax)) / 10
    for m in (1, 2, 2.5, 5, 10, 20, 25, 50, 100):
        if vmax / (step * m) <= 6:
            step *= m
            break
    ticks, t = [], 0.0
    while t < vmax * 1.0001 + step:
        ticks.append(t)
        if t >= vmax:
            break
        t += step
    return ticks


def grouped_bars(title, subtitle, groups, series, values, unit, log=True, width=900, height=460,
                 extra_series=None):
    """groups: [label]; series: [(key, label)]; values[(group_i, key)] = metric
    entry (median/min/max) or None. extra_series: {key: second metric} drawn as
    a lighter bar behind (e.g. p99 behind p50)."""
    ml, mr, mt, mb = 70, 20, 70, 90
    pw, ph = width - ml - mr, height - mt - mb
    vals = []
    for m in list(values.values()) + list((extra_series or {}).values()):
        if m and m.get("median") is not None:
            vals += [m["median"], m.get("max") or m["median"]]
    vals = [v for v in vals if v is not None and (v > 0 or not log)]
    if not vals:
        return None
    if log:
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals) * 1.3))
        if hi / lo < 100:
            hi = lo * 100

        def y(v):
            v = max(v, lo)
            return mt + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

        ticks = [lo * 10 ** i for i in range(int(round(math.log10(hi / lo))) + 1)]
    else:
        ticks = nice_ticks_linear(max(vals) * 1.15)
        hi = ticks[-1]
        lo = 0

        def y(v):
            return mt + ph - (v / hi) * ph

    body = [f'<text x="{ml}" y="28" font-size="17" font-weight="600" fill="#1a202c">{esc(title)}</text>',
            f'<text x="{ml}" y="48" font-size="12" fill="#4a5568">{esc(subtitle)}</text>']
    # grid + ticks
    for t in ticks:
        yy = y(t)
        body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e2e8f0"/>')
        body.append(f'<text x="{ml - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#4a5568">{esc(tick(t))}</text>')
        if log:
            for k in (2, 5):
                if t * k < hi:
                    y2 = y(t * k)
                    body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y2:.1f}" y2="{y2:.1f}" stroke="#f4f6f9"/>')
    body.append(f'<text transform="translate(18,{mt + ph / 2:.0f}) rotate(-90)" text-anchor="middle" '
                f'fill="#2d3748">{esc(unit)}{" (log scale)" if log else ""}</text>')
    body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="#a0aec0"/>')
    gw = pw / len(groups)
    present = [k for k, _ in series if any(values.get((g, k)) for g in range(len(groups)))]
    bw = min(60, gw * 0.8 / max(1, len(present)))
    for gi, glabel in enumerate(groups):
        gx = ml + gi * gw + (gw - bw * len(present)) / 2
        body.append(f'<text x="{ml + gi * gw + gw / 2:.1f}" y="{mt + ph + 20}" text-anchor="middle" '
                    f'font-weight="600" fill="#2d3748">{esc(glabel)}</text>')
        for si, key in enumerate(present):
            x = gx + si * bw
            color = COLORS.get(key, "#718096")
            ex = (extra_series or {}).get((gi, key))
            if ex and ex.get("median"):
                ye = y(ex["median"])
                body.append(f'<rect x="{x + 3:.1f}" y="{ye:.1f}" width="{bw - 6:.1f}" height="{mt + ph - ye:.1f}" '
                            f'fill="{color}" fill-opacity="0.28" stroke="{color}" stroke-opacity="0.6"/>')
                body.append(f'<text x="{x + bw / 2:.1f}" y="{ye - 4:.1f}" text-anchor="middle" font-size="10" '
                            f'fill="#4a5568">{esc(num(ex["median"]))}</text>')
            m = values.get((gi, key))
            if not m or m.get("median") is None:
                body.append(f'<text x="{x + bw / 2:.1f}" y="{mt + ph - 6}" text-anchor="middle" font-size="10" '
                            f'fill="#a0aec0">n/a</text>')
                continue
            yv = y(m["median"])
            inner = bw - 6 if not ex else bw - 18
            xo = x + (bw - inner) / 2
            body.append(f'<rect x="{xo:.1f}" y="{yv:.1f}" width="{inner:.1f}" height="{mt + ph - yv:.1f}" '
                        f'fill="{color}" rx="2"><title>{esc(dict(series)[key])}: {esc(num(m["median"]))} '
                        f'{esc(unit)}</title></rect>')
            if m.get("n", 0) > 1 and m.get("min") is not None and m["min"] != m["max"]:
                y1, y2 = y(m["min"]), y(m["max"])
                cx = xo + inner / 2
                body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="#1a202c" '
                            f'stroke-width="1.2"/>')
                for yy in (y1, y2):
                    body.append(f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{yy:.1f}" y2="{yy:.1f}" '
                                f'stroke="#1a202c" stroke-width="1.2"/>')
            label_y = min(yv, y(m["max"]) if m.get("max") else yv) - 5
            if ex and ex.get("median"):
                # inside the bar, near its top, to stay clear of the p99 label
                label_y = yv + 13 if mt + ph - yv > 18 else yv - 5
                fill = "#ffffff" if mt + ph - yv > 18 else "#1a202c"
            else:
                fill = "#1a202c"
            body.append(f'<text x="{xo + inner / 2:.1f}" y="{label_y:.1f}" text-anchor="middle" font-size="11" '
                        f'font-weight="600" fill="{fill}">{esc(num(m["median"]))}</text>')
    # legend
    lx = ml
    ly = height - 28
    for key in present:
        label = dict(series)[key]
        body.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{COLORS.get(key, "#718096")}" rx="2"/>')
        body.append(f'<text x="{lx + 17}" y="{ly}" fill="#2d3748">{esc(label)}</text>')
        lx += 30 + 7 * len(label)
    if extra_series:
        body.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="#718096" fill-opacity="0.28" '
                    f'stroke="#718096"/>')
        body.append(f'<text x="{lx + 17}" y="{ly}" fill="#2d3748">light bar: p99, solid bar: p50</text>')
    return svg_doc(width, height, body)


def hbars(title, subtitle, rows, unit, width=900):
    """rows: [(key, label, metric entry)] as horizontal bars (linear scale)."""
    rows = [r for r in rows if r[2] and r[2].get("median") is not None]
    if not rows:
        return None
    ml, mr, mt, rh = 170, 70, 70, 34
    height = mt + rh * len(rows) + 50
    pw = width - ml - mr
    vmax = max((r[2].get("max") or r[2]["median"]) for r in rows)
    ticks = nice_ticks_linear(vmax * 1.05)
    hi = ticks[-1]

    def x(v):
        return ml + v / hi * pw

    body = [f'<text x="20" y="28" font-size="17" font-weight="600" fill="#1a202c">{esc(title)}</text>',
            f'<text x="20" y="48" font-size="12" fill="#4a5568">{esc(subtitle)}</text>']
    bottom = mt + rh * len(rows)
    for t in ticks:
        xx = x(t)
        body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{mt - 6}" y2="{bottom}" stroke="#e2e8f0"/>')
        body.append(f'<text x="{xx:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#4a5568">{esc(tick(t))}</text>')
    body.append(f'<text x="{ml + pw / 2:.0f}" y="{bottom + 36}" text-anchor="middle" fill="#2d3748">{esc(unit)}</text>')
    for i, (key, label, m) in enumerate(rows):
        yy = mt + i * rh
        color = COLORS.get(key, "#718096")
        w = x(m["median"]) - ml
        body.append(f'<text x="{ml - 10}" y="{yy + rh / 2 + 4:.1f}" text-anchor="end" fill="#2d3748">{esc(label)}</text>')
        body.append(f'<rect x="{ml}" y="{yy + 6}" width="{max(w, 1):.1f}" height="{rh - 12}" fill="{color}" rx="2">'
                    f'<title>{esc(label)}: {esc(num(m["median"]))} {esc(unit)}</title></rect>')
        end = x(m["median"])
        if m.get("n", 0) > 1 and m.get("min") is not None and m["min"] != m["max"]:
            x1, x2 = x(m["min"]), x(m["max"])
            cy = yy + rh / 2
            body.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="#1a202c"/>')
            for xx in (x1, x2):
                body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{cy - 4:.1f}" y2="{cy + 4:.1f}" stroke="#1a202c"/>')
            end = max(end, x2)
        body.append(f'<text x="{end + 6:.1f}" y="{yy + rh / 2 + 4:.1f}" font-weight="600" fill="#1a202c">'
                    f'{esc(num(m["median"]))}</text>')
    body.append(f'<line x1="{ml}" x2="{ml}" y1="{mt - 6}" y2="{bottom}" stroke="#a0aec0"/>')
    return svg_doc(width, height, body)


def plots(d: Data) -> dict:
    cfg = d.doc.get("config", {})
    runs = cfg.get("runs")
    spread = f"median of {runs} run{'s' if runs != 1 else ''}" + (", whiskers: min–max" if runs and runs > 1 else "")
    series = [(c, CLIENT_LABEL[c]) for c in CLIENTS]
    groups = [label for _, label in RATE_CASES]
    out = {}
    vals = {(gi, c): d.get("ingest", c, case, "cpu_us_per_event") for gi, (case, _) in enumerate(RATE_CASES)
            for c in CLIENTS}
    svg = grouped_bars("Client CPU per event received", f"CPU time of the client process ÷ events acked; "
                       f"lower is better; {spread}", groups, series, vals, "µs of CPU per event", log=True)
    if svg:
        out["ingest-cpu.svg"] = svg
    p50 = {(gi, c): d.get("ingest", c, case, "ack_p50_ms") for gi, (case, _) in enumerate(RATE_CASES) for c in CLIENTS}
    p99 = {(gi, c): d.get("ingest", c, case, "ack_p99_ms") for gi, (case, _) in enumerate(RATE_CASES) for c in CLIENTS}
    svg = grouped_bars("Ack latency", f"From the emulator queueing an event to the client's ack; lower is better; "
                       f"{spread} of each percentile", groups, series, p50, "milliseconds", log=True,
                       extra_series=p99)
    if svg:
        out["ack-latency.svg"] = svg
    rows = [(k, label, d.get("idle", k, "", "rss_mb")) for k, label in IDLE_SUBJECTS]
    svg = hbars("Idle memory (RSS)", f"Resident memory after connecting and 5 s idle; lower is better; {spread}",
                rows, "MB resident")
    if svg:
        out["footprint.svg"] = svg
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="markdown tables and SVG plots from bench results")
    p.add_argument("--in", dest="inp", default=os.path.join(ROOT, "docs", "bench", "results.json"))
    p.add_argument("--out-dir", default=os.path.join(ROOT, "docs", "bench"))
    args = p.parse_args()
    with open(args.inp) as f:
        d = Data(json.load(f))
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "tables.md")
    with open(path, "w") as f:
        f.write(tables_md(d) + "\n")
    print(f"report: wrote {path}", file=sys.stderr)
    for name, svg in plots(d).items():
        path = os.path.join(args.out_dir, name)
        with open(path, "w") as f:
            f.write(svg)
        print(f"report: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
