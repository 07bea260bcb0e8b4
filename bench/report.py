"""Writes a finished run_bench.Bench as bench/results/{results.md,
results.json, chart.png}: absolute figures, the ratios to the peers of the
same run, and pass/fail against issue 4's targets."""

import json
import os

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
        order = ["fanprobe", "fanprobe CLI", "fanprobe engine alone",
                 "aiohttp", "curl", "blackbox_exporter", "wrk"]
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
        return rows

    # Markdown ---------------------------------------------------------------

    def markdown(self):
        b = self.bench
        m = b.meta
        out = []
        w = out.append
        w("# fanprobe benchmark: fanprobe and its peers, side by side\n")
        w(f"One `make bench` run on {m['date']}: {m['cpus']} cores "
          f"({m['cpu_model']}), kernel {m['kernel']}, fanprobe "
          f"`{m['fanprobe_rev']}`; nginx {m['nginx']} + echo module as the "
          f"target, curl {m['curl']}, aiohttp {m['aiohttp']}, wrk "
          f"{m['wrk']}, blackbox_exporter {m['blackbox_exporter']}. "
          f"Medians of {m['repeats_done']} repeat(s) (peak RSS: the "
          f"maximum), W5 once; the whole run took {m['elapsed_s']:.0f} s. "
          f"Delays seeded with {m['seed']}. The machine is shared and "
          f"noisy (1-minute load average {m['loadavg_start']:.1f} at the "
          f"start, {m.get('loadavg_end', 0):.1f} at the end, on "
          f"{m['cpus']} cores): read the ratios. A ratio between two peers is the median "
          f"over repeats of their ratio within one repeat, where they ran "
          f"seconds apart.\n")

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
          "W1 and W5 (the default), `reuse_connections` in W2 reuse.")
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
          "curl caps `--parallel-max` at 300, so it only runs where c ≤ 300.")
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
        if b.notes:
            w("## Notes from this run\n")
            for note in b.notes:
                w(f"- {note}")
            w("")
        return "\n".join(out)

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


def write(bench, out_dir):
    report = Report(bench)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(report.markdown())
    raw = {"meta": bench.meta, "notes": bench.notes,
           "w1_ideal_s": bench.w1_ideal, "w1_longest_s": bench.w1_longest,
           "w5_ideal_s": bench.w5_ideal,
           "runs": [{"workload": w, "case": c, "peer": p, "runs": runs}
                    for (w, c, p), runs in bench.runs.items()]}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    report.chart(os.path.join(out_dir, "chart.png"))
