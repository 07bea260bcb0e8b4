"""Helpers shared by the bench's drivers (run_bench.py, realworld.py): child
processes timed and measured from /proc, long-running services, readiness
waits, the ideal schedule.  No workload lives here."""

import heapq
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PYTHON = "/usr/bin/python3"  # Debian's, where python3-aiohttp lives


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- /proc figures of a running process -------------------------------------

def proc_cpu_s(pid):
    """User + system CPU seconds of pid so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_kb(pid):
    """Peak RSS (VmHWM) of pid since start or since reset_hwm."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid):
    """Resets VmHWM to the current RSS, so the next peak is one workload's."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HwmWatcher(threading.Thread):
    """Follows a child's VmHWM until it exits.

    wait4's ru_maxrss cannot be used: Linux folds the forking parent's peak
    (this script's, tens of MB) into the child's at exec.  VmHWM is the
    child's own address space only and never decreases, so its last reading
    is the child's peak to within one polling interval.
    """

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            try:
                self.peak_kb = max(self.peak_kb, proc_hwm_kb(self.pid))
            except OSError:
                return
            self.stopped.wait(0.02)


def run_child(cmd, timeout, stdout_path, env=None):
    """Runs cmd to completion; returns (rc, wall_s, cpu_s, maxrss_kb, out).

    CPU is wait4's rusage of that one child; peak RSS its VmHWM.
    """
    with open(stdout_path, "w") as out, \
            open(stdout_path + ".err", "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        watcher = HwmWatcher(proc.pid)
        watcher.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): the child must not outlive
            # the bench.
            proc.kill()
            proc.wait()
            raise
        finally:
            killer.cancel()
            watcher.stopped.set()
            watcher.join()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    with open(stdout_path) as f:
        text = f.read()
    with open(stdout_path + ".err") as f:
        err_text = f.read().strip()
    if proc.returncode != 0 and err_text:
        log(f"  {os.path.basename(cmd[0])} exit {proc.returncode}: "
            f"{err_text[-300:]}")
    return (proc.returncode, wall, usage.ru_utime + usage.ru_stime,
            watcher.peak_kb, text)


class Service:
    """A long-running helper (nginx, blackbox_exporter, fanprobe-server)."""

    def __init__(self, name, cmd, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


def http_ok(url):
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def tcp_open(port):
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def load_average():
    """The 1-minute load average: how much else this shared machine ran."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def tool_version(cmd, pattern=r"[\d]+\.[\d.]+"):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=10)
        match = re.search(pattern, out.stdout + out.stderr)
        return match.group(0) if match else "?"
    except OSError:
        return "missing"


def ideal_schedule_s(delays, concurrency):
    """Makespan of greedy list scheduling in list order on `concurrency`
    slots: each probe starts the moment a slot frees, in the order given,
    with zero overhead.  What a perfect semaphore-bounded client achieves."""
    slots = [0.0] * min(concurrency, len(delays))
    heapq.heapify(slots)
    end = 0.0
    for delay in delays:
        finish = heapq.heappop(slots) + delay
        end = max(end, finish)
        heapq.heappush(slots, finish)
    return end


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines))
        f.write("\n")
