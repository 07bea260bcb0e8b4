#!/usr/bin/python3
"""make bench: fanprobe and the tools a user would otherwise pick, side by
side, in one run, against the same loopback target.

It starts its own nginx (bench/target/nginx.conf.in, in a temp prefix), its
own blackbox_exporter and fanprobe-server, writes the URL lists, runs every
workload of issue 4 round-robin over the peers (so drift on this shared
machine hits them all alike), and writes bench/results/results.md,
results.json and chart.png.  Every figure is also given as a ratio to the
peers measured in the same run.

Workloads
  W1  delays uniform 0-3 s (seeded): 100@100, 1k@1k, 10k@10k, and 10k@1k
      against the ideal in-order schedule of the same delays.
  W2  20,000 zero-delay probes at concurrency 100, fresh and reused
      connections.
  W3  time to first result in W1.
  W4  peak RSS and CPU microseconds per probe of the process doing the work
      (fanprobe-server, blackbox_exporter, or the client itself).
  W5  100,000 probes in one batch at concurrency 10,000 (W1's delays).
  W6-W8 (issue 14, realworld.py, in a network namespace of the bench's own,
      with its own dnsmasq): HTTPS with a full handshake per probe, 10,000
      distinct names, and a mixed fleet whose every outcome is known.

Repeat 1 of W1 and W2 runs first, then W5, then further repeats while the
time budget lasts; then W6-W8 likewise under their own budget.  Figures are
medians over the repeats (peak RSS: maximum).

Usage: run_bench.py [--build-dir build] [--repeats 3] [--budget 540]
                    [--only W1,W2,W5,W6,W7,W8] [--probes 10000]
                    [--netns-budget 780] [--out bench/results] [--keep]
W6-W8 need root (ip netns, /etc/netns).
"""

import argparse
import datetime
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (HERE, PYTHON, ROOT, Service, free_port, http_ok,
                      ideal_schedule_s, load_average, log, proc_cpu_s,
                      proc_hwm_kb, reset_hwm, run_child, tcp_open,
                      tool_version, wait_until, write_lines)

W1_CASES = [(100, 100), (1000, 1000), (10000, 10000), (10000, 1000)]
W2_N, W2_CONCURRENCY = 20000, 100
W5_N, W5_CONCURRENCY = 100000, 10000
# W9: ProbeStream, one list of zero-delay URLs sent over and over, at the
# W2 concurrency; the server's peak RSS at the longest stream against the
# shortest.
W9_LIST = 1000
W9_REPEATS = [10, 1000]  # 10,000 and 1,000,000 targets
MAX_DELAY_S = 3.0
PROBE_TIMEOUT_S = 30
WRK_SECONDS = 4
CURL_PARALLEL_MAX = 300  # curl 7.88 runs at most 300 at once
WORKLOADS = ["W1", "W2", "W5", "W6", "W7", "W8", "W9"]



# --- Workload data ----------------------------------------------------------

def seeded_delays(n, seed):
    """n delays uniform in [0, 3] s, rounded to the millisecond the URL
    carries, the same for every run with the same seed."""
    rng = random.Random(f"{seed}/{n}")
    return [round(rng.uniform(0, MAX_DELAY_S), 3) for _ in range(n)]


# --- The bench --------------------------------------------------------------

class Bench:

    def __init__(self, args):
        self.args = args
        self.build_dir = os.path.join(ROOT, args.build_dir)
        self.work = tempfile.mkdtemp(prefix="fanprobe-bench-")
        self.services = []
        self.runs = {}  # (workload, case, peer) -> [run dict, ...]
        self.meta = {}
        self.notes = []
        self.started = time.monotonic()
        self.seq = 0
        self.rep = 0
        # Filled by prepare() when W1, W2 or W5 run; by RealWorld for W6-W8.
        self.w1_ideal, self.w1_longest, self.w1_shortest = {}, {}, {}
        self.w5_ideal = None
        self.realworld = None

    def path(self, name):
        return os.path.join(self.work, name)

    def binary(self, name):
        path = os.path.join(self.build_dir, name)
        return path if os.access(path, os.X_OK) else None

    def elapsed(self):
        return time.monotonic() - self.started

    # Services ---------------------------------------------------------------

    def start_target(self):
        self.port = free_port()
        template = open(os.path.join(HERE, "target", "nginx.conf.in")).read()
        conf = template.replace("@PREFIX@", self.work).replace(
            "@PORT@", str(self.port))
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(self.path(sub), exist_ok=True)
        write_lines(self.path("nginx.conf"), [conf])
        nginx = Service("nginx", [
            "nginx", "-p", self.work, "-c", self.path("nginx.conf"),
            "-e", self.path("error.log"), "-g", "daemon off;"], self.work)
        self.services.append(nginx)
        self.target = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: http_ok(f"{self.target}/d/0"), 10, "nginx")
        # The sleep endpoint must actually sleep, or every W1 figure lies.
        t0 = time.perf_counter()
        http_ok(f"{self.target}/d/0.2")
        slept = time.perf_counter() - t0
        if not 0.19 < slept < 0.5:
            raise RuntimeError(f"/d/0.2 took {slept:.3f} s: echo_sleep broken")
        log(f"target: nginx on {self.target} (/d/0.2 took {slept:.3f} s)")

    def start_blackbox(self):
        exe = shutil.which("prometheus-blackbox-exporter")
        if not exe:
            self.notes.append("prometheus-blackbox-exporter is not installed;"
                              " its rows are missing.")
            self.blackbox = None
            return
        port = free_port()
        self.blackbox = Service("blackbox", [
            exe, "--config.file", os.path.join(HERE, "target", "blackbox.yml"),
            "--web.listen-address", f"127.0.0.1:{port}",
            "--log.level", "warn"], self.work)
        self.services.append(self.blackbox)
        self.blackbox_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{self.blackbox_url}/-/healthy"), 10,
                   "blackbox_exporter")

    def start_fanprobe(self):
        self.server_binary = self.binary("fanprobe-server")
        self.stream_client = self.binary("bench/stream_client")
        self.cli = self.binary("fanprobe")
        self.engine_bench = self.binary("bench/engine_bench")
        self.fanprobe = None
        self.server_starts = 0
        if not self.server_binary or not self.stream_client:
            self.notes.append(
                "fanprobe-server or bench/stream_client is not built; the "
                "fanprobe rows are missing.")
            log("fanprobe: not built, peers only")
            return
        self.restart_fanprobe()
        log(f"fanprobe-server on {self.fanprobe_addr} (pid {self.fanprobe.pid})")

    def server_flags(self):
        """The flag names this fanprobe-server build knows."""
        if not hasattr(self, "_server_flags"):
            out = subprocess.run([self.server_binary, "--helpfull"],
                                 capture_output=True, text=True, timeout=30)
            self._server_flags = set(
                re.findall(r"--([a-z_0-9]+)", out.stdout + out.stderr))
        return self._server_flags

    def restart_fanprobe(self):
        """A fresh fanprobe-server for every fanprobe run, as every peer is a
        fresh process: otherwise the heap a 100,000-probe batch leaves behind
        would be charged to the next workload's peak RSS."""
        if self.fanprobe:
            self.fanprobe.stop()
            self.services.remove(self.fanprobe)
            if self.fanprobe.proc.returncode not in (0, -signal.SIGTERM):
                self.notes.append(
                    f"fanprobe-server exited {self.fanprobe.proc.returncode}"
                    f" (see {self.fanprobe.log_path}).")
        port = free_port()
        self.server_starts += 1
        self.fanprobe_addr = f"127.0.0.1:{port}"
        cmd = [self.server_binary, f"--grpc_address={self.fanprobe_addr}",
               f"--max_in_flight={W5_CONCURRENCY}"]
        if "http_address" in self.server_flags():
            # Its metrics endpoint, on a port of its own: a fixed default
            # could be taken by another server on this shared machine.
            cmd.append(f"--http_address=127.0.0.1:{free_port()}")
        self.fanprobe = Service(f"fanprobe-server-{self.server_starts}",
                                cmd, self.work)
        self.services.append(self.fanprobe)
        wait_until(lambda: tcp_open(port), 20, "fanprobe-server")

    def stop_all(self):
        for service in reversed(self.services):
            service.stop()

    # Peers ------------------------------------------------------------------
    # Each returns a run dict: n, ok, wall_s, first_s (or None), rate
    # (probes/s), cpu_us (CPU microseconds per probe of the process doing
    # the work), rss_mb (its peak RSS during the run).

    def out_path(self, tag):
        self.seq += 1
        return self.path(f"run{self.seq:04d}-{tag}.out")

    def run_fanprobe(self, urls_file, n, concurrency, reuse=False,
                     results_per_event=None, stream_repeat=None):
        """stream_client's default sends results together (256 per event at
        most, as the CLI asks); results_per_event=1 is one per message.
        stream_repeat sends the list that many times over ProbeStream (n is
        then the total)."""
        if not self.fanprobe:
            return None
        self.restart_fanprobe()
        pid = self.fanprobe.pid
        reset_hwm(pid)
        cpu0 = proc_cpu_s(pid)
        cmd = [self.stream_client, f"--server={self.fanprobe_addr}",
               f"--urls_file={urls_file}", f"--concurrency={concurrency}",
               f"--timeout={PROBE_TIMEOUT_S}s"]
        if reuse:
            cmd.append("--reuse")
        if results_per_event is not None:
            cmd.append(f"--results_per_event={results_per_event}")
        limit = 180
        if stream_repeat is not None:
            cmd += ["--probe_stream", f"--repeat={stream_repeat}",
                    "--deadline=30m"]
            limit = 1800
        rc, wall, _, _, out = run_child(cmd, limit, self.out_path("fanprobe"))
        cpu = proc_cpu_s(pid) - cpu0
        report = self.parse_json(out)
        if report is None:
            return {"n": n, "ok": 0, "failed": True}
        return {
            "n": n, "ok": report["ok"], "wall_s": report["wall_s"],
            "first_s": report["first_s"] if report["first_s"] >= 0 else None,
            "server_elapsed_s": report["server_elapsed_s"],
            "client_process_s": wall,
            "rate": n / report["wall_s"], "cpu_us": cpu * 1e6 / n,
            "rss_mb": proc_hwm_kb(pid) / 1024,
            "result_events": report.get("result_events"),
            "client_rss_mb": report.get("client_max_rss_kb", 0) / 1024,
        }

    def run_fanprobe_cli(self, urls_file, n, concurrency):
        """The user's path: the CLI process, jsonl to /dev/null, timed from
        process start to exit (connection set-up and formatting included)."""
        if not self.cli or not self.fanprobe:
            return None
        self.restart_fanprobe()
        pid = self.fanprobe.pid
        reset_hwm(pid)
        cpu0 = proc_cpu_s(pid)
        cmd = [self.cli, "probe", f"--server={self.fanprobe_addr}",
               "--format=jsonl", f"--concurrency={concurrency}",
               f"--timeout={PROBE_TIMEOUT_S}s", f"--file={urls_file}"]
        out_path = self.out_path("cli")
        rc, wall, _, _, out = run_child(cmd, 180, out_path)
        cpu = proc_cpu_s(pid) - cpu0
        ok = out.count('"OUTCOME_OK"') + out.count('"OK"')
        os.remove(out_path)  # as if to /dev/null; counted above
        return {"n": n, "ok": ok if rc in (0, 1) else 0, "wall_s": wall,
                "first_s": None, "rate": n / wall, "cpu_us": cpu * 1e6 / n,
                "rss_mb": proc_hwm_kb(pid) / 1024, "exit": rc}

    def run_engine_bench(self, n, concurrency, reuse, urls_file=None):
        if not self.engine_bench:
            return None
        cmd = [self.engine_bench, f"--concurrency={concurrency}", "--json",
               f"--timeout={PROBE_TIMEOUT_S}s"]
        if urls_file:
            cmd.append(f"--urls_file={urls_file}")
        else:
            cmd += [f"--port={self.port}", "--delay=0", f"--n={n}"]
        if reuse:
            cmd.append("--reuse")
        rc, wall, cpu, maxrss, out = run_child(cmd, 120,
                                               self.out_path("engine"))
        report = self.parse_json(out)
        if report is None:
            return {"n": n, "ok": 0, "failed": True}
        return {"n": n, "ok": report["ok"], "wall_s": report["wall_s"],
                "first_s": report["first_s"], "rate": n / report["wall_s"],
                "cpu_us": report["cpu_us_per_probe"],
                "rss_mb": report["maxrss_kb"] / 1024}

    def run_aiohttp(self, urls_file, n, concurrency, fresh):
        cmd = [PYTHON, os.path.join(HERE, "peers", "aiohttp_fanout.py"),
               "--file", urls_file, "--concurrency", str(concurrency),
               "--timeout", str(PROBE_TIMEOUT_S)]
        if fresh:
            cmd.append("--fresh")
        rc, wall, _, _, out = run_child(cmd, 240, self.out_path("aiohttp"))
        report = self.parse_json(out)
        if report is None:
            return {"n": n, "ok": 0, "failed": True}
        return {"n": n, "ok": report["ok"], "wall_s": report["wall_s"],
                "first_s": report["first_s"], "rate": n / report["wall_s"],
                "cpu_us": report["cpu_s"] * 1e6 / n,
                "rss_mb": report["maxrss_kb"] / 1024}

    def run_curl(self, urls_file, n, concurrency, fresh):
        config = self.path(os.path.basename(urls_file) + ".curlrc")
        if not os.path.exists(config):
            with open(urls_file) as f, open(config, "w") as out:
                for url in f.read().split():
                    out.write(f'url = "{url}"\noutput = "/dev/null"\n')
        cmd = ["curl", "--silent", "--parallel", "--parallel-immediate",
               "--parallel-max", str(min(concurrency, CURL_PARALLEL_MAX)),
               "--max-time", str(PROBE_TIMEOUT_S), "--write-out",
               "%{http_code}\\n", "--config", config]
        if fresh:
            cmd += ["--header", "Connection: close"]
        rc, wall, cpu, maxrss, out = run_child(cmd, 240, self.out_path("curl"))
        ok = sum(1 for line in out.split() if line.startswith(("2", "3")))
        return {"n": n, "ok": ok, "wall_s": wall, "first_s": None,
                "rate": n / wall, "cpu_us": cpu * 1e6 / n,
                "rss_mb": maxrss / 1024}

    def parse_wrk(self, out):
        requests = re.search(r"(\d+) requests in", out)
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not requests or not rate:
            return None, None, None
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), "
            r"timeout (\d+)", out)
        bad = int(errors.group(1)) if errors else 0
        if socket_errors:
            bad += sum(int(x) for x in socket_errors.groups())
        return int(requests.group(1)), float(rate.group(1)), bad

    def run_wrk(self, concurrency, fresh):
        cmd = ["wrk", "-t2", f"-c{concurrency}", f"-d{WRK_SECONDS}s",
               "--timeout", f"{PROBE_TIMEOUT_S}s"]
        if fresh:
            cmd += ["-H", "Connection: close"]
        cmd.append(f"{self.target}/d/0")
        rc, wall, cpu, maxrss, out = run_child(cmd, 60, self.out_path("wrk"))
        requests, rate, bad = self.parse_wrk(out)
        if requests is None:
            return {"n": 0, "ok": 0, "failed": True}
        return {"n": requests, "ok": requests - bad, "wall_s": None,
                "first_s": None, "rate": rate,
                "cpu_us": cpu * 1e6 / requests, "rss_mb": maxrss / 1024}

    def run_blackbox(self, urls_file, concurrency):
        if not self.blackbox or not self.blackbox.alive():
            return None
        pid = self.blackbox.pid
        reset_hwm(pid)
        cpu0 = proc_cpu_s(pid)
        cmd = ["wrk", "-t2", f"-c{concurrency}", f"-d{WRK_SECONDS}s",
               "--timeout", f"{PROBE_TIMEOUT_S}s", "-s",
               os.path.join(HERE, "peers", "blackbox_rotate.lua"),
               self.blackbox_url, "--", urls_file]
        rc, wall, _, _, out = run_child(cmd, 60, self.out_path("blackbox"))
        cpu = proc_cpu_s(pid) - cpu0
        requests, rate, bad = self.parse_wrk(out)
        if requests is None:
            return {"n": 0, "ok": 0, "failed": True}
        failures = re.search(r"probe_failures (\d+)", out)
        bad += int(failures.group(1)) if failures else 0
        return {"n": requests, "ok": requests - bad, "wall_s": None,
                "first_s": None, "rate": rate, "cpu_us": cpu * 1e6 / requests,
                "rss_mb": proc_hwm_kb(pid) / 1024}

    @staticmethod
    def parse_json(out):
        for line in reversed(out.strip().splitlines()):
            try:
                return json.loads(line)
            except ValueError:
                continue
        return None

    def record(self, workload, case, peer, run):
        if run is None:
            return
        shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in run.items()]
        run["rep"] = self.rep
        self.runs.setdefault((workload, case, peer), []).append(run)
        log(f"  {workload} {case} {peer}: {' '.join(shown)}")

    # Workloads --------------------------------------------------------------

    def prepare(self):
        self.w1_lists = {}
        for n, c in W1_CASES:
            if n not in self.w1_lists:
                delays = seeded_delays(n, self.args.seed)
                path = self.path(f"w1_{n}.txt")
                write_lines(path, [f"{self.target}/d/{d:.3f}" for d in delays])
                self.w1_lists[n] = (path, delays)
        self.w1_ideal = {
            f"{n}@{c}": ideal_schedule_s(self.w1_lists[n][1], c) for n, c in W1_CASES}
        self.w1_longest = {f"{n}@{c}": max(self.w1_lists[n][1]) for n, c in W1_CASES}
        self.w1_shortest = {f"{n}@{c}": min(self.w1_lists[n][1])
                            for n, c in W1_CASES}
        self.w2_file = self.path("w2.txt")
        write_lines(self.w2_file,
                    [f"{self.target}/d/0?i={i}" for i in range(W2_N)])
        self.w9_file = self.path("w9.txt")
        write_lines(self.w9_file,
                    [f"{self.target}/d/0?i={i}" for i in range(W9_LIST)])
        self.w5_file = self.path("w5.txt")
        self.w5_delays = seeded_delays(W5_N, self.args.seed)
        write_lines(self.w5_file, [f"{self.target}/d/{d:.3f}"
                                   for d in self.w5_delays])
        self.w5_ideal = ideal_schedule_s(self.w5_delays, W5_CONCURRENCY)

    def run_w1(self, rep):
        for n, c in W1_CASES:
            case = f"{n}@{c}"
            path = self.w1_lists[n][0]
            self.record("W1", case, "fanprobe", self.run_fanprobe(path, n, c))
            self.record("W1", case, "aiohttp",
                        self.run_aiohttp(path, n, c, fresh=False))
            if c <= CURL_PARALLEL_MAX:
                self.record("W1", case, "curl",
                            self.run_curl(path, n, c, fresh=False))
            if case == "10000@10000":
                # How much of the headline is the engine, how much gRPC.
                self.record("W1", case, "fanprobe engine alone",
                            self.run_engine_bench(n, c, False, path))
            if rep == 0 and case == "10000@10000":
                self.record("W1", case, "fanprobe CLI",
                            self.run_fanprobe_cli(path, n, c))

    def run_w2(self, rep):
        n, c = W2_N, W2_CONCURRENCY
        for mode in ("fresh", "reuse"):
            fresh = mode == "fresh"
            self.record("W2", mode, "fanprobe",
                        self.run_fanprobe(self.w2_file, n, c, reuse=not fresh))
            self.record("W2", mode, "fanprobe, 1 result/event",
                        self.run_fanprobe(self.w2_file, n, c, reuse=not fresh,
                                          results_per_event=1))
            self.record("W2", mode, "fanprobe engine alone",
                        self.run_engine_bench(n, c, reuse=not fresh))
            self.record("W2", mode, "aiohttp",
                        self.run_aiohttp(self.w2_file, n, c, fresh))
            self.record("W2", mode, "curl",
                        self.run_curl(self.w2_file, n, c, fresh))
            self.record("W2", mode, "wrk", self.run_wrk(c, fresh))
            if fresh:
                self.record("W2", mode, "blackbox_exporter",
                            self.run_blackbox(self.w2_file, c))
            if rep == 0 and fresh:
                self.record("W2", mode, "fanprobe CLI",
                            self.run_fanprobe_cli(self.w2_file, n, c))

    def run_w9(self):
        for repeat in W9_REPEATS:
            n = W9_LIST * repeat
            self.record("W9", f"{n}", "fanprobe",
                        self.run_fanprobe(self.w9_file, n, W2_CONCURRENCY,
                                          stream_repeat=repeat))

    def run_w5(self):
        self.record("W5", f"{W5_N}@{W5_CONCURRENCY}", "fanprobe",
                    self.run_fanprobe(self.w5_file, W5_N, W5_CONCURRENCY))

    def run(self):
        only = set(self.args.only.split(","))
        unknown = only - set(WORKLOADS)
        if unknown:
            raise SystemExit(f"unknown workload(s): {sorted(unknown)}; "
                             f"known: {','.join(WORKLOADS)}")
        self.meta = self.describe()
        self.meta["workloads"] = sorted(only)
        if only & {"W1", "W2", "W5", "W9"}:
            self.run_classic(only)
        if only & {"W6", "W7", "W8"}:
            self.stop_all()  # W1-W5's services; W6-W8 start their own
            self.run_realworld(only)
        self.meta["loadavg_end"] = load_average()
        self.meta["elapsed_s"] = round(self.elapsed(), 1)

    def run_classic(self, only):
        """W1-W5, on the machine's loopback, against a target by IP."""
        self.start_target()
        self.start_blackbox()
        self.start_fanprobe()
        self.prepare()
        rep_times = []
        for rep in range(self.args.repeats):
            if rep > 0:
                projected = self.elapsed() + max(rep_times)
                if projected > self.args.budget:
                    self.notes.append(
                        f"Ran {rep} repeat(s) of W1/W2, not "
                        f"{self.args.repeats}: another would end past the "
                        f"{self.args.budget} s budget.")
                    break
            t0 = time.monotonic()
            self.rep = rep
            log(f"repeat {rep + 1}")
            if "W1" in only:
                self.run_w1(rep)
            if "W2" in only:
                self.run_w2(rep)
            rep_times.append(time.monotonic() - t0)
            if rep == 0 and "W5" in only:
                self.run_w5()
            if rep == 0 and "W9" in only:
                self.run_w9()
        self.meta["repeats_done"] = len(rep_times)
        for service in self.services:
            if not service.alive():
                self.notes.append(f"{service.name} died during the run "
                                  f"(see its log).")

    def run_realworld(self, only):
        """W6-W8, in a network namespace of the bench's own
        (realworld.py), deleted again whatever happens."""
        import realworld  # bench/realworld.py
        self.realworld = realworld.RealWorld(self, only)
        self.meta["netns_loadavg_start"] = load_average()
        try:
            self.realworld.setup()
            self.meta.update(self.realworld.describe())
            self.realworld.run()
        finally:
            self.realworld.teardown()
            self.meta["netns_loadavg_end"] = load_average()
            self.meta.update({f"netns_{k}": v
                              for k, v in self.realworld.meta.items()})
        for service in self.realworld.services:
            if service.proc.returncode not in (0, -signal.SIGTERM,
                                               -signal.SIGQUIT, None):
                self.notes.append(f"{service.name} exited "
                                  f"{service.proc.returncode} during W6-W8 "
                                  f"(see its log).")

    def describe(self):
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short",
                              "HEAD"], capture_output=True, text=True)
        aiohttp = subprocess.run(
            [PYTHON, "-c", "import aiohttp; print(aiohttp.__version__)"],
            capture_output=True, text=True)
        return {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(), "cpu_model": model,
            "kernel": os.uname().release,
            "fanprobe_rev": rev.stdout.strip() or "?",
            "nginx": tool_version(["nginx", "-v"]),
            "curl": tool_version(["curl", "--version"]),
            "aiohttp": aiohttp.stdout.strip() or "missing",
            "wrk": tool_version(["wrk", "-v"], r"\d+\.\d+\.\d+"),
            "blackbox_exporter": tool_version(
                ["prometheus-blackbox-exporter", "--version"]),
            "seed": self.args.seed,
            "loadavg_start": load_average(),
        }

    # Summaries --------------------------------------------------------------

    def paired_ratio(self, a, b, key):
        """Median over repeats of a's `key` / b's `key` in the same repeat.

        a and b are (workload, case, peer).  Peers of one repeat ran seconds
        apart, so this ratio shrugs off the drift of a shared machine better
        than a ratio of medians."""
        def by_rep(triple):
            return {r["rep"]: r[key] for r in self.runs.get(triple, [])
                    if not r.get("failed") and r.get(key)}
        left, right = by_rep(a), by_rep(b)
        common = sorted(set(left) & set(right))
        if not common:
            return None
        return statistics.median(left[k] / right[k] for k in common)

    def summary(self, workload, case, peer):
        """Medians over the repeats (peak RSS: the maximum), or None."""
        runs = [r for r in self.runs.get((workload, case, peer), [])
                if not r.get("failed")]
        if not runs:
            return None
        merged = {"repeats": len(runs), "n": runs[0]["n"]}
        for key in ("wall_s", "first_s", "rate", "cpu_us",
                    "server_elapsed_s"):
            values = [r[key] for r in runs if r.get(key) is not None]
            merged[key] = statistics.median(values) if values else None
        merged["rss_mb"] = max(r["rss_mb"] for r in runs)
        client_rss = [r["client_rss_mb"] for r in runs if r.get("client_rss_mb")]
        merged["client_rss_mb"] = max(client_rss) if client_rss else None
        merged["ok"] = min(r["ok"] for r in runs)
        merged["all_ok"] = all(r["ok"] == r["n"] for r in runs)
        merged["ok_total"] = sum(r["ok"] for r in runs)
        merged["n_total"] = sum(r["n"] for r in runs)
        return merged


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=540,
                        help="seconds; no repeat starts that would end later")
    parser.add_argument("--netns-budget", type=float, default=780,
                        help="seconds for W6-W8; no repeat starts that "
                        "would end later")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help="comma list of workloads (default: all)")
    parser.add_argument("--probes", type=int, default=10000,
                        help="probes per W6-W8 run (smaller for a quick "
                        "iteration)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (logs, URL lists)")
    args = parser.parse_args()

    # Children inherit it: 10,000 connections need more than 1024 fds.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench = Bench(args)
    log(f"work dir {bench.work}")

    def stop(signum, _frame):
        # Unwinds through every finally: children killed, services
        # stopped, the namespace and its /etc/netns files deleted.
        log(f"signal {signum}: stopping (work dir {bench.work} kept)")
        raise SystemExit(128 + signum)

    # SIGINT too: a shell starts background jobs with it ignored, which
    # would leave Ctrl-C's fallback, a plain kill -INT, with no effect.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        bench.run()
    finally:
        bench.stop_all()
    sys.path.insert(0, HERE)
    import report  # bench/report.py: the table and the chart
    os.makedirs(args.out, exist_ok=True)
    report.write(bench, args.out)
    if not args.keep:
        shutil.rmtree(bench.work, ignore_errors=True)
    log(f"done in {bench.elapsed():.0f} s: {args.out}/results.md")


if __name__ == "__main__":
    main()
