"""Writes a finished run_bench.Bench as bench/results/{results.md,
results.json, chart.png}: absolute figures, the ratios to the peers of the
same run, and pass/fail against issue 4's targets."""

import collections
import json
import os
import statistics

from realworld import CONCURRENCY, CURL_SHARDS, REFUSED_PORT

CONCURRENCY_TEXT = f"{CONCURRENCY:,}"
REFUSED_PORT_TEXT = str(REFUSED_PORT)

W1_HEADLINE = "10000@10000"
W1_SCHEDULED = "10000@1000"



def fmt(value, digits=3):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def times(value):
    return "—" if value is None else f"{value:.2f}×"


def ms(seconds):
    return None if seconds is None else seconds * 1000


def ok_cell(summary):
    """Probes that succeeded, over every repeat."""
    return f"{summary['ok_total']:,}/{summary['n_total']:,}"


def verdict(ok):
    if ok is None:
        return "n/a"
    return "**PASS**" if ok else "**FAIL**"


class Report:

    def __init__(self, bench):
        self.bench = bench
        self.s = bench.summary

    def peers(self, workload, case):
        order = ["fanprobe", "fanprobe, 1 result/event", "fanprobe CLI",
                 "fanprobe engine alone", "aiohttp", "curl",
                 "blackbox_exporter", "wrk"]
        present = {p for (w, c, p) in self.bench.runs if w == workload
                   and c == case}
        return [p for p in order if p in present]

    # The targets ------------------------------------------------------------

    def checks(self):
        s = self.s
        b = self.bench
        rows = []

        def add(check, fanprobe, against, value, target, ok):
            rows.append((check, fanprobe, against, value, target, ok))

        fp = s("W1", W1_HEADLINE, "fanprobe")
        aio = s("W1", W1_HEADLINE, "aiohttp")
        longest = b.w1_longest[W1_HEADLINE]
        r = ratio(fp and fp["wall_s"], longest)
        add("W1 10k @ 10k, wall", f"{fmt(fp and fp['wall_s'])} s",
            f"longest delay {longest:.3f} s (aiohttp "
            f"{times(ratio(aio and aio['wall_s'], longest))})",
            times(r), "≤ 1.10×", None if r is None else r <= 1.10)

        first = ms(fp and fp["first_s"])
        add("W1 first result (10k @ 10k)", f"{fmt(first)} ms",
            f"aiohttp {fmt(ms(aio and aio['first_s']))} ms; shortest delay "
            f"{b.w1_shortest[W1_HEADLINE] * 1000:.1f} ms", "—", "≤ 50 ms",
            None if first is None else first <= 50)

        fp = s("W1", W1_SCHEDULED, "fanprobe")
        aio = s("W1", W1_SCHEDULED, "aiohttp")
        ideal = b.w1_ideal[W1_SCHEDULED]
        r = ratio(fp and fp["wall_s"], ideal)
        add("W1 10k @ 1k, wall", f"{fmt(fp and fp['wall_s'])} s",
            f"ideal schedule {ideal:.3f} s (aiohttp "
            f"{times(ratio(aio and aio['wall_s'], ideal))})",
            times(r), "≤ 1.03×", None if r is None else r <= 1.03)

        for mode, peer, label, need in (
                ("fresh", "wrk", "wrk `Connection: close`", 0.7),
                ("fresh", "aiohttp", "aiohttp force_close", 4.0),
                ("reuse", "curl", "curl `--parallel`", 1.0),
                ("reuse", "aiohttp", "aiohttp keep-alive", 3.0)):
            fp = s("W2", mode, "fanprobe")
            other = s("W2", mode, peer)
            r = b.paired_ratio(("W2", mode, "fanprobe"), ("W2", mode, peer),
                               "rate")
            add(f"W2 {mode} connections, probes/s",
                f"{fmt(fp and fp['rate'])}/s",
                f"{label} {fmt(other and other['rate'])}/s", times(r),
                f"≥ {need:.1f}×", None if r is None else r >= need)

        fp = s("W1", W1_HEADLINE, "fanprobe")
        aio = s("W1", W1_HEADLINE, "aiohttp")
        rss = fp and fp["rss_mb"]
        add("W4 server peak RSS, 10k in flight", f"{fmt(rss)} MB",
            f"aiohttp {fmt(aio and aio['rss_mb'])} MB",
            times(ratio(rss, aio and aio["rss_mb"])), "≤ 100 MB",
            None if rss is None else rss <= 100)

        for mode, peer in (("fresh", "aiohttp"), ("reuse", "curl")):
            fp = s("W2", mode, "fanprobe")
            other = s("W2", mode, peer)
            cpu = fp and fp["cpu_us"]
            add(f"W4 server CPU per probe (W2 {mode})", f"{fmt(cpu)} µs",
                f"{peer} {fmt(other and other['cpu_us'])} µs",
                times(b.paired_ratio(("W2", mode, "fanprobe"),
                                     ("W2", mode, peer), "cpu_us")),
                "≤ 60 µs",
                None if cpu is None else cpu <= 60)

        w5 = s("W5", f"{100000}@{10000}", "fanprobe")
        w1 = s("W1", W1_HEADLINE, "fanprobe")
        r = ratio(w5 and w5["rss_mb"], w1 and w1["rss_mb"])
        complete = w5 is not None and w5["all_ok"]
        add("W5 100k @ 10k, one batch",
            "—" if w5 is None else
            f"{w5['ok']:,}/{w5['n']:,} ok, {fmt(w5['rss_mb'])} MB",
            f"W1 10k @ 10k RSS {fmt(w1 and w1['rss_mb'])} MB", times(r),
            "completes; ≤ 1.5×",
            None if w5 is None or r is None else complete and r <= 1.5)

        short = s("W9", "10000", "fanprobe")
        long = s("W9", "1000000", "fanprobe")
        r = ratio(long and long["rss_mb"], short and short["rss_mb"])
        client = ratio(long and long["client_rss_mb"],
                       short and short["client_rss_mb"])
        add("W9 ProbeStream, 1M targets: server peak RSS",
            "—" if long is None else
            f"{long['ok']:,}/{long['n']:,} ok, {fmt(long['rss_mb'])} MB "
            f"(client {fmt(long['client_rss_mb'])} MB)",
            f"10k targets: {fmt(short and short['rss_mb'])} MB (client "
            f"{fmt(short and short['client_rss_mb'])} MB)",
            f"{times(r)} (client {times(client)})", "completes; ≤ 1.2×",
            None if long is None or r is None else
            long["all_ok"] and r <= 1.2)
        return rows

    # Markdown ---------------------------------------------------------------

    def markdown(self):
        b = self.bench
        m = b.meta
        out = []
        w = out.append
        w("# fanprobe benchmark: fanprobe and its peers, side by side\n")
        extra = ""
        if b.realworld:
            extra = (f", dnsmasq {m.get('dnsmasq', '?')}, OpenSSL "
                     f"{m.get('openssl', '?')}")
        w(f"One `make bench` run on {m['date']} "
          f"({', '.join(m.get('workloads', []))}): {m['cpus']} cores "
          f"({m['cpu_model']}), kernel {m['kernel']}, fanprobe "
          f"`{m['fanprobe_rev']}`; nginx {m['nginx']} + echo module as the "
          f"target, curl {m['curl']}, aiohttp {m['aiohttp']}, wrk "
          f"{m['wrk']}, blackbox_exporter {m['blackbox_exporter']}{extra}. "
          f"The whole run took {m['elapsed_s']:.0f} s. The machine is "
          f"shared and noisy (1-minute load average "
          f"{m['loadavg_start']:.1f} at the start, "
          f"{m.get('loadavg_end', 0):.1f} at the end, on {m['cpus']} "
          f"cores): read the ratios. A ratio between two peers is the "
          f"median over repeats of their ratio within one repeat, where "
          f"they ran seconds apart.\n")
        if b.w1_ideal:
            self.classic_markdown(w)
        if b.realworld:
            RealWorldReport(self).markdown(w)

        if b.notes:
            w("## Notes from this run\n")
            for note in b.notes:
                w(f"- {note}")
            w("")
        return "\n".join(out)

    def classic_markdown(self, w):
        """W1-W5 (issue 4)."""
        b = self.bench
        m = b.meta
        w(f"W1-W5: medians of {m['repeats_done']} repeat(s) (peak RSS: the "
          f"maximum), W5 once; delays seeded with {m['seed']}.\n")
        w("## Issue 4's targets\n")
        w("| Check | fanprobe | Compared with | Ratio | Target | Result |")
        w("|---|---|---|---|---|---|")
        for check, fanprobe, against, value, target, ok in self.checks():
            w(f"| {check} | {fanprobe} | {against} | {value} | {target} | "
              f"{verdict(ok)} |")
        w("")

        w("## W1 and W3: delays uniform in 0–3 s\n")
        w("Wall time from the first request to the last result; ratios are "
          "to the longest delay (the floor when concurrency = n), to the "
          "ideal in-order schedule of the same delays on c slots, and to "
          "aiohttp's wall time (lower is better). First result: W3.\n")
        w("| Targets @ concurrency | Peer | Wall (s) | × longest delay | "
          "× ideal | × aiohttp | First result (ms) | CPU µs/probe | "
          "Peak RSS (MB) | OK, all repeats |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for case in b.w1_ideal:
            n, c = case.split("@")
            label = f"{int(n):,} @ {int(c):,}"
            w(f"| {label} | *ideal schedule* | {b.w1_ideal[case]:.3f} | "
              f"{times(b.w1_ideal[case] / b.w1_longest[case])} | 1.00× | — | "
              f"{b.w1_shortest[case] * 1000:.1f} (shortest delay) | — | — | — |")
            for peer in self.peers("W1", case):
                r = self.s("W1", case, peer)
                if r is None:
                    continue
                vs_aiohttp = b.paired_ratio(("W1", case, peer),
                                            ("W1", case, "aiohttp"), "wall_s")
                w(f"| {label} | {peer} | {fmt(r['wall_s'], 4)} | "
                  f"{times(ratio(r['wall_s'], b.w1_longest[case]))} | "
                  f"{times(ratio(r['wall_s'], b.w1_ideal[case]))} | "
                  f"{times(vs_aiohttp)} | "
                  f"{fmt(ms(r['first_s']))} | {fmt(r['cpu_us'])} | "
                  f"{fmt(r['rss_mb'])} | {ok_cell(r)} |")
        w("")

        w("## W2: 20,000 zero-delay probes at concurrency 100\n")
        w("Probes per second; ratios are this peer's rate over wrk's, "
          "aiohttp's and curl's in the same mode (higher is better). wrk and "
          "blackbox_exporter run for a fixed time instead of a fixed count.\n")
        w("| Connections | Peer | Probes/s | × wrk | × aiohttp | × curl | "
          "CPU µs/probe | Peak RSS (MB) | OK, all repeats |")
        w("|---|---|---|---|---|---|---|---|---|")
        for mode in ("fresh", "reuse"):
            for peer in self.peers("W2", mode):
                r = self.s("W2", mode, peer)
                if r is None:
                    continue
                cells = [times(b.paired_ratio(("W2", mode, peer),
                                              ("W2", mode, ref), "rate"))
                         for ref in ("wrk", "aiohttp", "curl")]
                w(f"| {mode} | {peer} | {fmt(r['rate'])} | "
                  f"{' | '.join(cells)} | {fmt(r['cpu_us'])} | "
                  f"{fmt(r['rss_mb'])} | {ok_cell(r)} |")
        w("")

        w("## W4: cost\n")
        w("CPU is user + system time of the process doing the probing, "
          "divided by probes: `fanprobe-server` (from /proc/PID/stat around "
          "the batch; the client reading the stream is not counted), "
          "`blackbox_exporter` (likewise; wrk driving it is not counted), "
          "and for aiohttp, curl and wrk the client process itself (rusage). "
          "Peak RSS is VmHWM of the same process: every fanprobe run gets a "
          "fresh `fanprobe-server`, as every client peer is a fresh process, "
          "and blackbox_exporter's is reset before each run "
          "(`/proc/PID/clear_refs`), so each figure is one workload's peak. "
          "The figures are in the W1, W2 and W5 tables; the headline "
          "comparison:\n")
        w("| Peer | CPU µs/probe, W2 fresh | CPU µs/probe, W2 reuse | "
          "Peak RSS (MB), W1 10k @ 10k | Peak RSS (MB), W2 fresh |")
        w("|---|---|---|---|---|")
        for peer in ("fanprobe", "fanprobe engine alone", "aiohttp", "curl",
                     "blackbox_exporter", "wrk"):
            fresh = self.s("W2", "fresh", peer)
            reuse = self.s("W2", "reuse", peer)
            w1 = self.s("W1", W1_HEADLINE, peer)
            if not (fresh or reuse or w1):
                continue
            w(f"| {peer} | {fmt(fresh and fresh['cpu_us'])} | "
              f"{fmt(reuse and reuse['cpu_us'])} | "
              f"{fmt(w1 and w1['rss_mb'])} | "
              f"{fmt(fresh and fresh['rss_mb'])} |")
        w("")

        w("## W5: 100,000 probes in one batch at concurrency 10,000\n")
        w5 = self.s("W5", "100000@10000", "fanprobe")
        w1 = self.s("W1", W1_HEADLINE, "fanprobe")
        if w5 is None:
            w("Not run (fanprobe not built).\n")
        else:
            w("| Wall (s) | Ideal schedule (s) | × ideal | First result (ms) "
              "| CPU µs/probe | Peak RSS (MB) | × W1 10k @ 10k RSS | OK |")
            w("|---|---|---|---|---|---|---|---|")
            w(f"| {fmt(w5['wall_s'], 4)} | {b.w5_ideal:.3f} | "
              f"{times(ratio(w5['wall_s'], b.w5_ideal))} | "
              f"{fmt(ms(w5['first_s']))} | {fmt(w5['cpu_us'])} | "
              f"{fmt(w5['rss_mb'])} | "
              f"{times(ratio(w5['rss_mb'], w1 and w1['rss_mb']))} | "
              f"{w5['ok']:,}/{w5['n']:,} |")
            w("")

        w("## How each peer runs\n")
        w("- **fanprobe**: `fanprobe-server` and `bench/stream_client`, which "
          "sends one `StreamProbes` batch and reads the stream without "
          "formatting it. Its clock starts just before the RPC (the channel "
          "is already connected, as a long-lived client's is) and the first "
          "result is the first result event it reads. Fresh connections in "
          "W1 and W5 (the default), `reuse_connections` in W2 reuse. It asks "
          "for `max_results_per_event` 256, as the CLI does: what completes "
          "while the previous message is being written goes in one message.")
        w("- **fanprobe, 1 result/event**: the same with "
          "`max_results_per_event` 1, one message per result (W2 only).")
        w("- **fanprobe CLI**: the user's path, `fanprobe probe "
          "--format=jsonl` into a file, timed from process start to exit; "
          "run once per run as a cross-check.")
        w("- **fanprobe engine alone**: `bench/engine_bench`, the engine "
          "without gRPC, in-process (its CPU and RSS are the whole process).")
        w("- **aiohttp**: `bench/peers/aiohttp_fanout.py`, the tutorials' "
          "fan-out (one `ClientSession`, `TCPConnector(limit=c)`, "
          "`asyncio.gather` over semaphore-bounded fetches), keep-alive by "
          "default and `force_close` for W2 fresh. Its first result is the "
          "first fetch to finish inside the gather, although `gather` hands "
          "nothing to its caller before the last one.")
        w("- **curl**: `curl --parallel --parallel-immediate --parallel-max "
          "c` over a `--config` URL list; `Connection: close` for fresh. "
          "curl 7.88 runs at most 300 transfers at once whatever "
          "`--parallel-max` says, so it only runs where c ≤ 300.")
        w("- **blackbox_exporter**: `wrk -c c` with "
          "`bench/peers/blackbox_rotate.lua`, one `/probe?module=http_2xx` "
          "per request rotating over the W2 URLs; always fresh connections "
          "(each probe builds its own HTTP client).")
        w("- **wrk**: straight at the target, the physical limit; "
          "`Connection: close` for fresh, keep-alive for reuse.")
        w(f"- **target**: nginx with the echo module on 127.0.0.1, "
          f"`/d/<seconds>` sleeping via `echo_sleep $delay`, 2 workers, "
          f"20,000 connections each (`bench/target/nginx.conf.in`), started "
          f"by the bench in a temp prefix.\n")

    # Chart ------------------------------------------------------------------

    def chart(self, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        b = self.bench
        colors = {"fanprobe": "#1b9e77", "fanprobe engine alone": "#66c2a5",
                  "fanprobe CLI": "#a6d854", "aiohttp": "#d95f02",
                  "curl": "#7570b3", "blackbox_exporter": "#e7298a",
                  "wrk": "#666666"}
        fig, axes = plt.subplots(2, 3, figsize=(16, 9))
        fig.suptitle(f"fanprobe vs peers — one run, {b.meta['date']}, "
                     f"{b.meta['cpus']} cores (ratios within the run)")

        def grouped(ax, groups, peers, value, log=False):
            width = 0.8 / max(1, len(peers))
            for i, peer in enumerate(peers):
                xs, ys = [], []
                for j, group in enumerate(groups):
                    v = value(group, peer)
                    if v is not None:
                        xs.append(j + (i - (len(peers) - 1) / 2) * width)
                        ys.append(v)
                if ys:
                    bars = ax.bar(xs, ys, width, label=peer,
                                  color=colors.get(peer))
                    ax.bar_label(bars, fmt="%.3g", fontsize=7, rotation=90,
                                 padding=2)
            ax.set_xticks(range(len(groups)))
            if log:
                ax.set_yscale("log")
            ax.legend(fontsize=7)

        cases = list(b.w1_ideal)
        def short(count):
            count = int(count)
            return f"{count // 1000}k" if count >= 1000 else str(count)

        labels = ["@".join(short(x) for x in c.split("@")) for c in cases]

        ax = axes[0][0]
        grouped(ax, cases, ["fanprobe", "fanprobe engine alone", "aiohttp",
                            "curl"],
                lambda c, p: ratio((self.s("W1", c, p) or {}).get("wall_s"),
                                   b.w1_ideal[c]))
        ax.set_xticklabels(labels)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title("W1 wall ÷ ideal schedule (lower is better)")

        ax = axes[0][1]
        grouped(ax, cases, ["fanprobe", "aiohttp"],
                lambda c, p: ms((self.s("W1", c, p) or {}).get("first_s")),
                log=True)
        ax.set_xticklabels(labels)
        ax.axhline(50, color="red", linestyle="--", linewidth=0.8)
        ax.set_title("W3 time to first result, ms (log; target 50 ms)")

        w2_peers = ["fanprobe", "fanprobe engine alone", "aiohttp", "curl",
                    "blackbox_exporter", "wrk"]
        ax = axes[0][2]
        grouped(ax, ["fresh", "reuse"], w2_peers,
                lambda m, p: (self.s("W2", m, p) or {}).get("rate"), log=True)
        ax.set_xticklabels(["fresh connections", "reused connections"])
        ax.set_title("W2 probes/s, 20k zero-delay @ 100 (log)")

        ax = axes[1][0]
        grouped(ax, ["fresh", "reuse"], w2_peers,
                lambda m, p: (self.s("W2", m, p) or {}).get("cpu_us"),
                log=True)
        ax.set_xticklabels(["W2 fresh", "W2 reuse"])
        ax.axhline(60, color="red", linestyle="--", linewidth=0.8)
        ax.set_title("W4 CPU µs per probe (log; target 60 µs)")

        ax = axes[1][1]
        rss_groups = [("W1", W1_HEADLINE), ("W2", "fresh"),
                      ("W5", "100000@10000")]
        grouped(ax, rss_groups, ["fanprobe", "fanprobe engine alone",
                                 "aiohttp", "curl", "blackbox_exporter"],
                lambda g, p: (self.s(g[0], g[1], p) or {}).get("rss_mb"))
        ax.set_xticklabels(["W1 10k@10k", "W2 fresh", "W5 100k@10k"])
        ax.axhline(100, color="red", linestyle="--", linewidth=0.8)
        ax.set_title("W4 peak RSS, MB (target 100 MB at 10k in flight)")

        ax = axes[1][2]
        ax.axis("off")
        lines = ["Issue 4 targets", ""]
        for check, fanprobe, _, value, target, ok in self.checks():
            mark = {True: "PASS", False: "FAIL", None: "n/a"}[ok]
            absolute = any(unit in target for unit in ("ms", "µs", "MB"))
            shown = fanprobe if absolute or value == "—" else value
            lines.append(f"{mark:4}  {check}: {shown} ({target})")
        ax.text(0, 1, "\n".join(lines), va="top", family="monospace",
                fontsize=8)

        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


# --- W6-W8 (issue 14) --------------------------------------------------------

W6_CPU_VS_CURL = 0.5
W6_STRETCH_US = 400
W7_RATE_VS_CURL = 1.5
W7_CPU_US = 150
W8_X_IDEAL = 1.5


def kinds_cell(counter):
    if not counter:
        return "none"
    return ", ".join(f"{kind} {count:,}" for kind, count
                     in sorted(counter.items(), key=lambda kv: -kv[1]))


class RealWorldReport:
    """The W6-W8 sections: targets, one table per workload, and what was
    counted where the probes landed."""

    PEERS = ["fanprobe", "fanprobe engine alone", "curl", "aiohttp",
             "blackbox_exporter"]

    def __init__(self, report):
        self.report = report
        self.bench = report.bench
        self.rw = report.bench.realworld
        self.cases = {(c.workload, c.label): c for c in self.rw.cases}

    def runs(self, workload, case, peer):
        return self.bench.runs.get((workload, case, peer), [])

    def agg(self, workload, case, peer):
        """Medians of the rates and costs, every repeat's right outcomes,
        and sums of what was counted at the target and the resolver."""
        runs = self.runs(workload, case, peer)
        if not runs:
            return None
        base = self.bench.summary(workload, case, peer) or {}
        out = {"repeats": len(runs), "n": runs[0]["n"],
               "failed": sum(1 for r in runs if r.get("failed")),
               "rate": base.get("rate"), "cpu_us": base.get("cpu_us"),
               "wall_s": base.get("wall_s"),
               "right": [r.get("right", 0) for r in runs],
               "per_probe_check": all(r.get("per_probe_check")
                                      for r in runs),
               "wrong": collections.Counter(), "n_total": 0}
        for key in ("x_ideal", "resolver_cpu_us"):
            values = [r[key] for r in runs if r.get(key) is not None
                      and not r.get("failed")]
            out[key] = statistics.median(values) if values else None
        # Counted at the target and the resolver: the median repeat for
        # the tables, the sum over repeats for the checks.
        for key in ("requests", "connections", "reused_conn", "tls_full",
                    "tls_resumed", "tls13", "a_queries", "aaaa_queries",
                    "names_queried", "foreign_queries", "udp_rcvbuf_errors",
                    "log_lost"):
            values = [r.get(key, 0) for r in runs]
            out[key] = int(statistics.median(values))
            out[key + "_sum"] = sum(values)
        for r in runs:
            out["wrong"].update(r.get("wrong", {}))
            out["n_total"] += r["n"]
        return out

    def paired(self, workload, case, peer, other, key):
        return self.bench.paired_ratio((workload, case, peer),
                                       (workload, case, other), key)

    def first_case(self, workload):
        labels = [c.label for c in self.rw.cases if c.workload == workload]
        return labels[0] if labels else None

    # Targets -------------------------------------------------------------

    def checks(self):
        rows = []

        def add(check, fanprobe, against, value, target, ok):
            rows.append((check, fanprobe, against, value, target, ok))

        case = self.first_case("W6")
        if case:
            fp = self.agg("W6", case, "fanprobe")
            curl = self.agg("W6", case, "curl")
            cpu = fp and fp["cpu_us"]
            r = self.paired("W6", case, "fanprobe", "curl", "cpu_us")
            add("W6 CPU per HTTPS probe", f"{fmt(cpu)} µs",
                f"curl {fmt(curl and curl['cpu_us'])} µs", times(r),
                f"≤ {W6_CPU_VS_CURL:.2f}× curl",
                None if r is None else r <= W6_CPU_VS_CURL)
            add("W6 CPU per HTTPS probe (stretch)", f"{fmt(cpu)} µs", "—",
                "—", f"≤ {W6_STRETCH_US} µs",
                None if cpu is None else cpu <= W6_STRETCH_US)
        case = self.first_case("W7")
        if case:
            fp = self.agg("W7", case, "fanprobe")
            curl = self.agg("W7", case, "curl")
            r = self.paired("W7", case, "fanprobe", "curl", "rate")
            names = case.split("@")[0]
            add(f"W7 {int(names):,} names, probes/s",
                f"{fmt(fp and fp['rate'])}/s",
                f"curl {fmt(curl and curl['rate'])}/s", times(r),
                f"≥ {W7_RATE_VS_CURL:.1f}× curl",
                None if r is None else r >= W7_RATE_VS_CURL)
            cpu = fp and fp["cpu_us"]
            add(f"W7 {int(names):,} names, CPU per probe", f"{fmt(cpu)} µs",
                f"curl {fmt(curl and curl['cpu_us'])} µs",
                times(self.paired("W7", case, "fanprobe", "curl", "cpu_us")),
                f"≤ {W7_CPU_US} µs", None if cpu is None else cpu <= W7_CPU_US)
        for c in self.rw.cases:
            if c.workload == "W7" and c.label != case:
                fp = self.agg("W7", c.label, "fanprobe")
                right = fp and fp["right"]
                add(f"W7 {c.n:,} names (issue 11's lost lookups)",
                    "—" if not fp else
                    " / ".join(f"{x:,}" for x in right) + f" of {c.n:,} OK",
                    "every repeat", "—", "all OK",
                    None if not fp else all(x == c.n for x in right)
                    and not fp["failed"])
        case = self.first_case("W8")
        if case:
            c = self.cases[("W8", case)]
            fp = self.agg("W8", case, "fanprobe")
            curl = self.agg("W8", case, "curl")
            add("W8 right outcomes, each repeat",
                "—" if not fp else " / ".join(f"{x:,}" for x in fp["right"])
                + f" of {c.n:,}",
                "curl " + ("—" if not curl else
                           " / ".join(f"{x:,}" for x in curl["right"])),
                "—", "all, every repeat",
                None if not fp else all(x == c.n for x in fp["right"])
                and not fp["failed"])
            wall = fp and fp["wall_s"]
            x = fp and fp["x_ideal"]
            add("W8 wall vs the ideal schedule", f"{fmt(wall)} s",
                f"ideal {c.ideal_s:.3f} s (curl "
                f"{times(curl and curl['x_ideal'])})", times(x),
                f"≤ {W8_X_IDEAL:.1f}×", None if x is None else x <= W8_X_IDEAL)
        return rows

    # Markdown ------------------------------------------------------------

    def markdown(self, w):
        m = self.bench.meta
        loads = [r["loadavg"] for c in self.rw.cases for p in self.PEERS
                 for r in self.runs(c.workload, c.label, p) if "loadavg" in r]
        w("## Issue 14's targets (W6–W8)\n")
        w(f"Every probe a fresh connection, concurrency {CONCURRENCY_TEXT}, "
          f"in a network namespace of the bench's own (loopback only) with "
          f"its own dnsmasq as every peer's resolver. Medians of "
          f"{m.get('netns_repeats_done', 0)} repeat(s); W6–W8 took "
          f"{m.get('netns_elapsed_s', 0):.0f} s (load average "
          f"{m.get('netns_loadavg_start', 0):.1f} at their start, "
          f"{m.get('netns_loadavg_end', 0):.1f} at their end; "
          f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} at the "
          f"start of each run, on {m['cpus']} cores). fanprobe-server "
          f"{'was' if m.get('netns_fanprobe_dns_server_flag') else 'was not'}"
          f" given `--dns_server` (it "
          f"{'has' if m.get('netns_fanprobe_dns_server_flag') else 'lacks'}"
          f" the flag); it resolves through the namespace's resolv.conf "
          f"either way.\n")
        w("| Check | fanprobe | Compared with | Ratio | Target | Result |")
        w("|---|---|---|---|---|---|")
        for check, fanprobe, against, value, target, ok in self.checks():
            w(f"| {check} | {fanprobe} | {against} | {value} | {target} | "
              f"{verdict(ok)} |")
        w("")
        for case in self.rw.cases:
            if case.workload == "W6":
                self.w6(w, case)
        w7 = [c for c in self.rw.cases if c.workload == "W7"]
        if w7:
            self.w7(w, w7)
        for case in self.rw.cases:
            if case.workload == "W8":
                self.w8(w, case)
        self.integrity(w)
        self.how(w)

    def integrity(self, w):
        """What the target and the resolver saw that a peer's own figures
        would hide: connections reused, sessions resumed, lookups that
        never reached the resolver, datagrams it dropped (sums over the
        repeats)."""
        w("## Checked at the target and the resolver\n")
        findings = []
        for case in self.rw.cases:
            for peer, a in self.present(case.workload, case.label):
                found = []
                if a["reused_conn_sum"]:
                    found.append(f"{a['reused_conn_sum']:,} requests on a "
                                 f"reused connection")
                if a["tls_resumed_sum"]:
                    found.append(f"{a['tls_resumed_sum']:,} TLS sessions "
                                 f"resumed")
                missing = case.names * a["repeats"] - a["names_queried_sum"]
                if case.names and missing > 0:
                    found.append(f"{missing:,} names never looked up at "
                                 f"dnsmasq")
                if a["udp_rcvbuf_errors_sum"]:
                    found.append(f"{a['udp_rcvbuf_errors_sum']:,} UDP "
                                 f"datagrams dropped at a full socket buffer")
                if a["foreign_queries_sum"]:
                    found.append(f"{a['foreign_queries_sum']:,} queries for "
                                 f"names outside bench.test")
                if a["failed"]:
                    found.append(f"{a['failed']} run(s) gave no report")
                if found:
                    findings.append(f"{case.workload} {case.n:,}, {peer} "
                                    f"({a['repeats']} repeat(s)): "
                                    f"{'; '.join(found)}")
        w("Sums over the repeats. Every request was on a fresh connection "
          "and every TLS handshake full, and every name was looked up at "
          "dnsmasq, for every peer, except where listed. A name never "
          "looked up is a lookup lost to a full socket buffer and not asked "
          "again before the probe gave up (or never asked).\n")
        for finding in findings or ["nothing to list."]:
            w(f"- {finding}")
        w("")

    def present(self, workload, label):
        return [(p, self.agg(workload, label, p)) for p in self.PEERS
                if self.runs(workload, label, p)]

    def w6(self, w, case):
        w(f"## W6: HTTPS, a full TLS 1.3 handshake per probe "
          f"({case.n:,} @ {CONCURRENCY_TEXT})\n")
        w("`https://127.0.0.1/d/0`: by IP, so no lookup, only TLS; an ECDSA "
          "P-256 leaf from a CA the bench makes at run time, verified by "
          "every peer against that CA; nginx with `ssl_session_cache off; "
          "ssl_session_tickets off;`. CPU is the prober's; ratios are to "
          "curl in the same repeat. The last four columns are counted in "
          "nginx's log (the median repeat): one TCP connection and one full "
          "handshake per probe is right; \"Resumed\" must be 0.\n")
        w("| Peer | Probes/s | × curl | CPU µs/probe | CPU × curl | "
          "OK, all repeats | Wrong (all repeats) | Requests | Connections | "
          "Full handshakes | Resumed |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        w(f"| *right* | — | — | — | — | all | none | {case.n:,} | "
          f"{case.n:,} | {case.n:,} | 0 |")
        for peer, a in self.present("W6", case.label):
            w(f"| {peer} | {fmt(a['rate'])} | "
              f"{times(self.paired('W6', case.label, peer, 'curl', 'rate'))}"
              f" | {fmt(a['cpu_us'])} | "
              f"{times(self.paired('W6', case.label, peer, 'curl', 'cpu_us'))}"
              f" | {sum(a['right']):,}/{a['n_total']:,} | "
              f"{kinds_cell(a['wrong'])} | {a['requests']:,} | "
              f"{a['connections']:,} | {a['tls_full']:,} | "
              f"{a['tls_resumed']:,} |")
        w("")

    def w7(self, w, cases):
        w(f"## W7: DNS at scale, one distinct name per probe (@ "
          f"{CONCURRENCY_TEXT})\n")
        w("`http://h00000.bench.test/d/0` ...: every name resolves to "
          "127.0.0.1 through the namespace's dnsmasq (no cache, so each "
          "lookup is a real query, and nothing forwarded). Lookups are "
          "counted in dnsmasq's query log (the median repeat): \"Names\" is "
          "the distinct names asked for (it should equal the probes); A "
          "and AAAA are the queries (a resolver asking again after a lost "
          "answer shows as more A than names). UDP drops are the "
          "namespace's `RcvbufErrors`: datagrams a full socket buffer "
          "threw away (the resolver's or a prober's).\n")
        w("| Names @ c | Peer | Probes/s | × curl | CPU µs/probe | "
          "OK, all repeats | Wrong (all repeats) | Names | A | AAAA | "
          "UDP drops | Connections | dnsmasq CPU µs/probe |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for case in cases:
            label = f"{case.n:,}"
            w(f"| {label} | *right* | — | — | — | all | none | {case.n:,} | "
              f"≥ {case.n:,} | — | 0 | {case.n:,} | — |")
            for peer, a in self.present("W7", case.label):
                w(f"| {label} | {peer} | {fmt(a['rate'])} | "
                  f"{times(self.paired('W7', case.label, peer, 'curl', 'rate'))}"
                  f" | {fmt(a['cpu_us'])} | "
                  f"{sum(a['right']):,}/{a['n_total']:,} | "
                  f"{kinds_cell(a['wrong'])} | {a['names_queried']:,} | "
                  f"{a['a_queries']:,} | {a['aaaa_queries']:,} | "
                  f"{a['udp_rcvbuf_errors']:,} | {a['connections']:,} | "
                  f"{fmt(a['resolver_cpu_us'])} |")
        w("")

    def w8(self, w, case):
        mix = case.mix
        w(f"## W8: a mixed fleet, every outcome known ({case.n:,} @ "
          f"{CONCURRENCY_TEXT}, {case.timeout_s} s probe timeout)\n")
        w(f"Distinct names, https on even indices and http on odd: "
          f"{mix[('https', 'ok')] + mix[('http', 'ok')]:,} healthy "
          f"(answer after uniform 0–300 ms; right outcome OK), "
          f"{mix[('https', 'refused')] + mix[('http', 'refused')]:,} "
          f"refused (port {REFUSED_PORT_TEXT}, nothing listens; right: "
          f"connect error), {mix[('https', 'slow')] + mix[('http', 'slow')]:,}"
          f" answering after 5 s (right: timeout). **Ideal schedule "
          f"{case.ideal_s:.3f} s**: the wall time of a prober with infinite "
          f"CPU and zero network time, i.e. the makespan of the targets' "
          f"own durations (a healthy target's delay, 0 for refused, the 2 s "
          f"timeout for the 5 s ones) scheduled in list order on "
          f"{CONCURRENCY_TEXT} slots, each probe starting the moment a slot "
          f"frees. \"Right\" is per repeat; wrong outcomes are summed over "
          f"repeats as expected->got. blackbox_exporter's results come as "
          f"counts (its /probe answer does not name the target), so its "
          f"right outcomes are the overlap of the expected and the reported "
          f"histograms. Connections, handshakes and lookups are the median "
          f"repeat's, counted at nginx and dnsmasq.\n")
        w("| Peer | Right, each repeat | Wrong (all repeats) | Wall (s) | "
          "× ideal | × curl wall | CPU µs/probe | Connections | "
          "Full handshakes | Resumed | Names | A |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        reached = case.n - mix[("https", "refused")] - mix[("http", "refused")]
        handshakes = mix[("https", "ok")] + mix[("https", "slow")]
        w(f"| *right (ideal schedule)* | {case.n:,} | — | "
          f"{case.ideal_s:.3f} | 1.00× | — | — | {reached:,} | "
          f"{handshakes:,} | 0 | {case.n:,} | ≥ {case.n:,} |")
        for peer, a in self.present("W8", case.label):
            right = " / ".join(f"{x:,}" for x in a["right"])
            if not a["per_probe_check"]:
                right += " (counts)"
            w(f"| {peer} | {right} | {kinds_cell(a['wrong'])} | "
              f"{fmt(a['wall_s'], 4)} | {times(a['x_ideal'])} | "
              f"{times(self.paired('W8', case.label, peer, 'curl', 'wall_s'))}"
              f" | {fmt(a['cpu_us'])} | {a['connections']:,} | "
              f"{a['tls_full']:,} | {a['tls_resumed']:,} | "
              f"{a['names_queried']:,} | {a['a_queries']:,} |")
        w("")

    def how(self, w):
        w("## How W6–W8 run\n")
        w("- **namespace**: `ip netns add`, loopback only; "
          "`/etc/netns/NS/resolv.conf` names the namespace's dnsmasq "
          "(`--no-resolv --no-hosts --local=/bench.test/ "
          "--address=/bench.test/127.0.0.1 --cache-size=0 --log-queries`), "
          "with `hosts` and `nsswitch.conf` (`hosts: files dns`) beside it; "
          "nginx, dnsmasq, blackbox_exporter, fanprobe-server and every "
          "client run inside it; all of it is deleted at the end, also on "
          "failure or Ctrl-C.")
        w("- **fanprobe**: a fresh `fanprobe-server` per run (with "
          "`--dns_server` when it has the flag), `bench/stream_client "
          "--ca_file` (the batch's `ca_pem`); CPU is the server's. "
          "**engine alone**: `bench/engine_bench --ca_file` (ProbeOptions "
          "`ca_pem`), the whole process.")
        w(f"- **curl**: concurrency {CONCURRENCY_TEXT} is {CURL_SHARDS} "
          f"`curl --parallel --parallel-immediate --parallel-max "
          f"{CONCURRENCY // CURL_SHARDS}` processes at once, each given every "
          f"{CURL_SHARDS}th URL (curl 7.88 runs at most 300 transfers at "
          f"once, whatever `--parallel-max` says), `--cacert`, `--max-time`, "
          f"`Connection: close`; CPU is their sum.")
        w("- **aiohttp**: `bench/peers/aiohttp_fanout.py --fresh`: a "
          "`Semaphore`, `TCPConnector(limit=c, force_close=True, ssl=ctx)` "
          "with `ssl.create_default_context(cafile=CA)`, `ClientTimeout("
          "total=timeout)`; aiohttp's default (threaded) resolver.")
        w("- **blackbox_exporter**: `wrk -c 1000` with "
          "`bench/peers/blackbox_once.lua`, each URL once as a "
          "`/probe?module=...` (modules in `bench/target/"
          "blackbox_netns.yml.in`, `tls_config.ca_file`); its own CPU, not "
          "wrk's.")
        w("- **target**: `bench/target/nginx_netns.conf.in`, http on 80, "
          "https on 443 (TLS 1.3 only), a log line per request with its "
          "connection serial, `$connection_requests` and "
          "`$ssl_session_reused`; each run's URLs carry a tag (`?r=t17`) "
          "that attributes every logged request to its run.\n")


def write(bench, out_dir):
    """results.json first, so a run's figures survive a report bug."""
    raw = {"meta": bench.meta, "notes": bench.notes,
           "w1_ideal_s": bench.w1_ideal, "w1_longest_s": bench.w1_longest,
           "w5_ideal_s": bench.w5_ideal,
           "cases": [{"workload": c.workload, "case": c.label, "n": c.n,
                      "timeout_s": c.timeout_s, "ideal_s": c.ideal_s}
                     for c in (bench.realworld.cases if bench.realworld
                               else [])],
           "runs": [{"workload": w, "case": c, "peer": p, "runs": runs}
                    for (w, c, p), runs in bench.runs.items()]}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    report = Report(bench)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(report.markdown())
    if bench.w1_ideal:
        # The chart is W1-W5's; W6-W8 are in the tables.
        report.chart(os.path.join(out_dir, "chart.png"))
