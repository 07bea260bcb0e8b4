"""W6-W8 of make bench: fanprobe and its peers against HTTPS, DNS at scale
and a mixed fleet (issue 14), inside a network namespace of the bench's own.

The namespace is loopback only (nothing it sends can leave it).  Inside it
run an nginx target (http on 80, https on 443, nothing on 81), a dnsmasq on
127.0.0.1:53 that answers *.bench.test with 127.0.0.1 and forwards nothing,
blackbox_exporter, and every prober; its resolv.conf (/etc/netns/NS/, which
`ip netns exec` mounts over /etc) names that dnsmasq, so every peer resolves
through the same server.  A fanprobe-server that has --dns_server is also
given the address explicitly.

Workloads (n probes, default 10,000, at concurrency 1,000; every probe a
fresh connection):
  W6  https://127.0.0.1/d/0: a full TLS 1.3 handshake per probe (ECDSA P-256
      leaf from a CA made at run time; no session cache, no tickets), every
      prober verifying against that CA.  By IP, so no DNS cost: W6 is TLS.
  W7  http://h00000.bench.test/d/0 ...: n distinct names, one lookup each;
      and the 3,000-name case of issue 11.  Plain http: W7 is DNS.
  W8  distinct names, 50% https / 50% http, 1% refused (port 81), 1%
      answering after 5 s, the rest after 0-300 ms; 2 s probe timeout.  Every
      probe's right outcome is known: OK, CONNECT_ERROR, or TIMEOUT.

Each run is checked where the probes land: nginx logs every request with its
connection and TLS session reuse, dnsmasq logs every query, and the
namespace's UDP counters show datagrams the resolver's socket dropped.
"""

import collections
import ctypes
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from benchlib import (HERE, PYTHON, HwmWatcher, Service, ideal_schedule_s,
                      load_average, log, proc_cpu_s, proc_hwm_kb, reset_hwm,
                      run_child, tool_version, wait_until, write_lines)

NS_PREFIX = "fanprobe-bench-"
HTTP_PORT, HTTPS_PORT, REFUSED_PORT = 80, 443, 81
DNS_SERVER = "127.0.0.1:53"
GRPC_ADDRESS = "127.0.0.1:50051"
METRICS_ADDRESS = "127.0.0.1:9101"
BLACKBOX_ADDRESS = "127.0.0.1:9115"
DOMAIN = "bench.test"

CONCURRENCY = 1000
W6_W7_TIMEOUT_S = 10
W8_TIMEOUT_S = 2
W8_SLOW_S = 5          # the 1% that answer after the probe timeout
W8_MAX_DELAY_S = 0.3   # the rest answer after uniform 0-300 ms
W8_REFUSED_SHARE = W8_SLOW_SHARE = 0.01
W7_ISSUE11_NAMES = 3000
# curl 7.88 runs at most 300 transfers at once (--parallel-max 1000 is
# taken as 300, measured: 300 in flight at the target), so concurrency
# 1,000 is four curl processes of 250, each given every fourth URL.
CURL_SHARDS = 4
PEERS = ["fanprobe", "fanprobe engine alone", "curl", "aiohttp",
         "blackbox_exporter"]
RUN_TIMEOUT_S = 300
CLONE_NEWNET = 0x40000000


def host(i):
    return f"h{i:05d}.{DOMAIN}"


# --- The namespace ----------------------------------------------------------

class Namespace:
    """A loopback-only network namespace with its own resolv.conf, deleted
    (with its /etc/netns files) by delete(), also after a failure.

    `ip netns exec NAME cmd` execs cmd in place (the pid stays cmd's), so
    every /proc figure of a process started through exec() is its own.
    """

    def __init__(self):
        self.name = f"{NS_PREFIX}{os.getpid()}"
        self.etc = f"/etc/netns/{self.name}"
        self.created = False
        self._executor = None

    @staticmethod
    def remove_stale():
        """Deletes namespaces an earlier bench left behind when it was
        killed outright: named for a pid that no longer runs."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ""
            match = re.fullmatch(re.escape(NS_PREFIX) + r"(\d+)", name)
            if not match or os.path.exists(f"/proc/{match.group(1)}"):
                continue
            log(f"removing stale namespace {name}")
            subprocess.run(["ip", "netns", "delete", name])
            shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)

    def create(self, resolver_ip):
        self.remove_stale()
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.created = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"],
                       check=True)
        os.makedirs(self.etc, exist_ok=True)
        # Only the namespace's dnsmasq, no search domain; hosts and nsswitch
        # too, so no machine-wide entry or NSS module (systemd-resolved,
        # mdns) answers instead of it.
        write_lines(f"{self.etc}/resolv.conf", [f"nameserver {resolver_ip}"])
        write_lines(f"{self.etc}/hosts",
                    ["127.0.0.1 localhost", "::1 localhost"])
        write_lines(f"{self.etc}/nsswitch.conf", ["hosts: files dns"])

    def exec(self, cmd):
        return ["ip", "netns", "exec", self.name] + list(cmd)

    def call(self, fn, *args):
        """Runs fn(*args) on a thread of this process that has joined the
        namespace (setns is per thread), so its sockets open in there."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, initializer=self._enter)
        return self._executor.submit(fn, *args).result()

    def _enter(self):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def delete(self):
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self.created:
            subprocess.run(["ip", "netns", "delete", self.name])
            self.created = False
        shutil.rmtree(self.etc, ignore_errors=True)


# --- Workload data ----------------------------------------------------------

def w8_targets(n, seed):
    """W8's targets: (scheme, kind, delay) per probe, seeded.  kind is
    "refused", "slow" or "ok"; half the probes are https (even index)."""
    rng = random.Random(f"{seed}/w8/{n}")
    refused = round(n * W8_REFUSED_SHARE)
    slow = round(n * W8_SLOW_SHARE)
    kinds = ["refused"] * refused + ["slow"] * slow + ["ok"] * (
        n - refused - slow)
    rng.shuffle(kinds)
    targets = []
    for i, kind in enumerate(kinds):
        scheme = "https" if i % 2 == 0 else "http"
        delay = {"refused": 0.0, "slow": float(W8_SLOW_S)}.get(
            kind, round(rng.uniform(0, W8_MAX_DELAY_S), 3))
        targets.append((scheme, kind, delay))
    return targets


EXPECTED_KIND = {"ok": "ok", "refused": "connect_error", "slow": "timeout"}


class Case:
    """One workload case: its URLs (with @TAG@ where a run's tag goes), the
    outcome each probe should have, and how to probe."""

    def __init__(self, workload, label, urls, expected, timeout_s, module,
                 names=0):
        self.workload = workload
        self.label = label
        self.urls = urls
        self.expected = expected
        self.timeout_s = timeout_s
        self.module = module  # blackbox_exporter's
        self.names = names    # distinct names a run must look up
        self.n = len(urls)
        self.ideal_s = None


def fanprobe_kind(name):
    """OUTCOME_CONNECT_ERROR / CONNECT_ERROR -> connect_error."""
    name = name.removeprefix("OUTCOME_").lower()
    return {"unexpected_status": "bad_status", "unspecified": "none"}.get(
        name, name)


def curl_kind(exit_code, http_code):
    if exit_code == 0:
        return "ok" if 200 <= http_code < 400 else "bad_status"
    return {6: "dns_error", 7: "connect_error", 28: "timeout",
            35: "tls_error", 51: "tls_error", 58: "tls_error",
            60: "tls_error", 77: "tls_error", 52: "io_error",
            55: "io_error", 56: "io_error", 18: "io_error"}.get(
                exit_code, f"curl_exit_{exit_code}")


# --- Counting at the target and the resolver --------------------------------

class AccessLog:
    """Follows nginx's access log (format `probes`, nginx_netns.conf.in) and
    counts, per run tag (the `r=` of the URL), requests, TCP connections,
    requests that reused a connection, and TLS handshakes full or resumed.
    A request is attributed by its tag, so one answered after its run ended
    (W8's 5 s targets) still counts for the run that sent it."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.by_tag = collections.defaultdict(
            lambda: {"requests": 0, "connections": set(), "reused_conn": 0,
                     "tls_full": 0, "tls_resumed": 0, "tls13": 0})

    def read(self):
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            f.seek(self.offset)
            data = f.read()
            self.offset = f.tell()
        lines = (self.partial + data).split("\n")
        self.partial = lines.pop()
        for line in lines:
            fields = line.split(" ")
            if len(fields) < 10:
                continue
            pid, conn, conn_requests, port, protocol, reused = fields[:6]
            tag = re.search(r"[?&]r=([^&\s]+)", fields[9])
            if not tag:
                continue
            entry = self.by_tag[tag.group(1)]
            entry["requests"] += 1
            entry["connections"].add((pid, conn))
            if conn_requests != "1":
                entry["reused_conn"] += 1
            if port == str(HTTPS_PORT):
                entry["tls_resumed" if reused == "r" else "tls_full"] += 1
                entry["tls13"] += protocol == "TLSv1.3"

    def counts(self, tag):
        entry = self.by_tag.get(tag)
        if entry is None:
            return {"requests": 0, "connections": 0, "reused_conn": 0,
                    "tls_full": 0, "tls_resumed": 0, "tls13": 0}
        shown = dict(entry)
        shown["connections"] = len(entry["connections"])
        return shown


class QueryLog:
    """dnsmasq's --log-queries file: counts the queries logged since the
    last mark, by type, and the distinct bench names they asked for."""

    QUERY = re.compile(r"query\[(\w+)\] (\S+) from ")

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def settle(self, quiet_s=0.2, limit_s=5):
        """Waits until the log stops growing: dnsmasq writes each line as
        it answers, and the last answers of a run may still be in flight."""
        deadline = time.monotonic() + limit_s
        size = -1
        while time.monotonic() < deadline:
            now = os.path.getsize(self.path)
            if now == size:
                return
            size = now
            time.sleep(quiet_s)

    def mark(self):
        self.settle()
        self.offset = os.path.getsize(self.path)

    def since_mark(self):
        self.settle()
        with open(self.path) as f:
            f.seek(self.offset)
            data = f.read()
            self.offset = f.tell()
        by_type = collections.Counter()
        names = set()
        other = 0
        for match in self.QUERY.finditer(data):
            qtype, name = match.groups()
            if name.endswith("." + DOMAIN):
                by_type[qtype] += 1
                names.add(name)
            else:
                other += 1
        return {"a_queries": by_type["A"], "aaaa_queries": by_type["AAAA"],
                "other_type_queries": sum(by_type.values()) - by_type["A"]
                - by_type["AAAA"], "names_queried": len(names),
                "foreign_queries": other,
                "log_lost": data.count("log entries lost")}


def udp_counters(pid):
    """The Udp: line of /proc/PID/net/snmp: the counters of the network
    namespace pid lives in (here the bench's)."""
    with open(f"/proc/{pid}/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return dict(zip(rows[0][1:], (int(v) for v in rows[1][1:])))


# --- The workloads ----------------------------------------------------------

class RealWorld:
    """Runs W6-W8 for run_bench.Bench: its record(), out_path(), binaries and
    notes are shared, so W6-W8 land in the same results as W1-W5."""

    def __init__(self, bench, only):
        self.bench = bench
        self.args = bench.args
        self.only = only
        self.work = os.path.join(bench.work, "netns")
        os.makedirs(self.work)
        self.ns = Namespace()
        self.services = []
        self.fanprobe = None
        self.server_starts = 0
        self.tags = 0
        self.runs_by_tag = {}
        self.cases = []
        self.meta = {}

    def path(self, name):
        return os.path.join(self.work, name)

    # Set-up -----------------------------------------------------------------

    def setup(self):
        if os.geteuid() != 0:
            raise RuntimeError("W6-W8 need root (ip netns, /etc/netns); "
                               "BENCH_ONLY=W1,W2,W5 runs the rest")
        if os.path.exists("/var/run/nscd/socket"):
            # glibc would ask nscd, outside the namespace, which would ask
            # the machine's resolver: W7/W8 would measure neither.
            raise RuntimeError("nscd is running: W6-W8 need every lookup to "
                               "reach the bench's own dnsmasq")
        self.ns.create(DNS_SERVER.split(":")[0])
        log(f"namespace {self.ns.name} (loopback only)")
        self.make_pki()
        self.start_dnsmasq()
        self.start_nginx()
        self.start_blackbox()
        self.find_fanprobe()
        self.prepare()

    def start_service(self, name, cmd):
        service = Service(name, self.ns.exec(cmd), self.work)
        self.services.append(service)
        return service

    def make_pki(self):
        """A throwaway CA and an ECDSA P-256 leaf for 127.0.0.1 and
        *.bench.test, made with openssl for this run only."""
        ca_key, self.ca_file = self.path("ca.key"), self.path("ca.pem")
        key, csr = self.path("leaf.key"), self.path("leaf.csr")
        self.cert = self.path("leaf.pem")
        self.key = key
        ext = self.path("leaf.ext")
        write_lines(ext, [
            f"subjectAltName=IP:127.0.0.1,DNS:{DOMAIN},DNS:*.{DOMAIN}",
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth"])
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes"]
        for cmd in (
                ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out",
                 self.ca_file, "-days", "2", "-subj",
                 "/CN=fanprobe bench throwaway CA", "-addext",
                 "basicConstraints=critical,CA:TRUE", "-addext",
                 "keyUsage=critical,keyCertSign,cRLSign"],
                ["openssl", "req", *ec, "-keyout", key, "-out", csr,
                 "-subj", f"/CN={DOMAIN}"],
                ["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_file,
                 "-CAkey", ca_key, "-CAcreateserial", "-out", self.cert,
                 "-days", "2", "-extfile", ext]):
            subprocess.run(cmd, check=True, capture_output=True)
        # nginx's workers run as nobody and read nothing of these; the
        # master reads them as root.  The CA is read by every prober.
        os.chmod(self.ca_file, 0o644)

    def start_dnsmasq(self):
        self.dns_log_path = self.path("dnsmasq.log")
        self.dnsmasq = self.start_service("dnsmasq", [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            # Never forward: no upstream from resolv.conf or anywhere, and
            # bench.test is local (names without an A answer get NODATA,
            # AAAA included, instead of a forward that would fail).
            "--no-resolv", "--no-hosts", "--no-poll", f"--local=/{DOMAIN}/",
            f"--address=/{DOMAIN}/127.0.0.1",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53",
            # No cache: every query is answered (and logged) on its own.
            "--cache-size=0", "--log-queries",
            f"--log-facility={self.dns_log_path}",
            # Root keeps it able to write its log in the bench's temp dir.
            "--user=root", "--pid-file="])
        wait_until(lambda: self.resolves(host(0)), 10, "dnsmasq")
        if self.resolves("outside.example"):
            raise RuntimeError("the namespace resolved a name outside "
                               f"{DOMAIN}: its resolver forwards")
        self.dns_log = QueryLog(self.dns_log_path)

    def resolves(self, name):
        """Resolves name the probers' way: getaddrinfo under the namespace's
        resolv.conf and nsswitch.conf.  AF_UNSPEC (`ahosts`), as the
        probers ask: with only 127.0.0.1 and ::1 configured, glibc's
        AI_ADDRCONFIG refuses an AF_INET lookup (`ahostsv4`) without
        sending a query, but leaves AF_UNSPEC alone."""
        out = subprocess.run(self.ns.exec(["getent", "ahosts", name]),
                             capture_output=True, text=True, timeout=10)
        return out.returncode == 0 and out.stdout.startswith("127.0.0.1")

    def start_nginx(self):
        template = open(os.path.join(HERE, "target",
                                     "nginx_netns.conf.in")).read()
        conf = (template.replace("@PREFIX@", self.work)
                .replace("@CERT@", self.cert).replace("@KEY@", self.key))
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(self.path(sub), exist_ok=True)
        write_lines(self.path("nginx.conf"), [conf])
        self.nginx = self.start_service("nginx-netns", [
            "nginx", "-p", self.work, "-c", self.path("nginx.conf"),
            "-e", self.path("error.log"), "-g", "daemon off;"])
        context = ssl.create_default_context(cafile=self.ca_file)

        def get(url):
            with urllib.request.urlopen(url, timeout=2,
                                        context=context) as response:
                return response.status == 200

        wait_until(lambda: self.ns.call(get, "http://127.0.0.1/d/0"), 10,
                   "nginx (namespace)")
        # The https side must verify against the CA, and sleep.
        t0 = time.perf_counter()
        self.ns.call(get, "https://127.0.0.1/d/0.2")
        slept = time.perf_counter() - t0
        if not 0.19 < slept < 0.6:
            raise RuntimeError(f"https /d/0.2 took {slept:.3f} s")
        self.access_log = AccessLog(self.path("access.log"))

    def start_blackbox(self):
        self.blackbox = None
        exe = shutil.which("prometheus-blackbox-exporter")
        if not exe:
            self.bench.notes.append("prometheus-blackbox-exporter is not "
                                    "installed; its W6-W8 rows are missing.")
            return
        template = open(os.path.join(HERE, "target",
                                     "blackbox_netns.yml.in")).read()
        config = self.path("blackbox.yml")
        write_lines(config, [template.replace("@CA_FILE@", self.ca_file)])
        self.blackbox = self.start_service("blackbox-netns", [
            exe, "--config.file", config, "--web.listen-address",
            BLACKBOX_ADDRESS, "--log.level", "warn"])
        wait_until(lambda: self.ns.call(
            lambda: urllib.request.urlopen(
                f"http://{BLACKBOX_ADDRESS}/-/healthy", timeout=2).status
            == 200), 10, "blackbox_exporter (namespace)")

    def find_fanprobe(self):
        b = self.bench
        self.server_binary = b.binary("fanprobe-server")
        self.stream_client = b.binary("bench/stream_client")
        self.engine_bench = b.binary("bench/engine_bench")
        self.server_flags = self.flags_of(self.server_binary)
        self.engine_flags = self.flags_of(self.engine_bench)
        # The engine with its own resolver reads resolv.conf (the
        # namespace's) by default; naming the server as well costs nothing
        # and holds if the default changes.
        self.meta["fanprobe_dns_server_flag"] = (
            "dns_server" in self.server_flags)
        if not self.server_binary or not self.stream_client:
            b.notes.append("fanprobe-server or bench/stream_client is not "
                           "built; the W6-W8 fanprobe rows are missing.")
        if not self.engine_bench or "outcomes_file" not in self.engine_flags:
            b.notes.append("bench/engine_bench is missing or lacks "
                           "--outcomes_file; the W6-W8 engine-alone rows "
                           "are missing.")

    @staticmethod
    def flags_of(binary):
        if not binary:
            return set()
        out = subprocess.run([binary, "--helpfull"], capture_output=True,
                             text=True, timeout=30)
        return set(re.findall(r"--([a-z_0-9]+)", out.stdout + out.stderr))

    def restart_fanprobe(self):
        """A fresh fanprobe-server in the namespace for every run, as every
        client peer is a fresh process."""
        if self.fanprobe:
            self.fanprobe.stop()
            self.services.remove(self.fanprobe)
            if self.fanprobe.proc.returncode not in (0, -signal.SIGTERM):
                self.bench.notes.append(
                    f"fanprobe-server (namespace) exited "
                    f"{self.fanprobe.proc.returncode} (see "
                    f"{self.fanprobe.log_path}).")
        self.server_starts += 1
        cmd = [self.server_binary, f"--grpc_address={GRPC_ADDRESS}",
               f"--max_in_flight={10 * CONCURRENCY}"]
        if "http_address" in self.server_flags:
            cmd.append(f"--http_address={METRICS_ADDRESS}")
        if "dns_server" in self.server_flags:
            cmd.append(f"--dns_server={DNS_SERVER}")
        self.fanprobe = self.start_service(
            f"fanprobe-server-netns-{self.server_starts}", cmd)
        port = int(GRPC_ADDRESS.rsplit(":", 1)[1])

        def connects():
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_until(lambda: self.ns.call(connects), 20,
                   "fanprobe-server (namespace)")

    def prepare(self):
        n, seed = self.args.probes, self.args.seed
        c = CONCURRENCY
        if "W6" in self.only:
            self.cases.append(Case(
                "W6", f"{n}@{c}",
                [f"https://127.0.0.1/d/0?r=@TAG@&i={i}" for i in range(n)],
                ["ok"] * n, W6_W7_TIMEOUT_S, "w6_w7"))
        if "W7" in self.only:
            for count in [n] + ([W7_ISSUE11_NAMES]
                                if n > W7_ISSUE11_NAMES else []):
                self.cases.append(Case(
                    "W7", f"{count}@{c}",
                    [f"http://{host(i)}/d/0?r=@TAG@" for i in range(count)],
                    ["ok"] * count, W6_W7_TIMEOUT_S, "w6_w7", names=count))
        if "W8" in self.only:
            targets = w8_targets(n, seed)
            urls, expected, durations = [], [], []
            for i, (scheme, kind, delay) in enumerate(targets):
                port = f":{REFUSED_PORT}" if kind == "refused" else ""
                urls.append(f"{scheme}://{host(i)}{port}/d/{delay:g}"
                            f"?r=@TAG@")
                expected.append(EXPECTED_KIND[kind])
                # What a prober with infinite CPU would hold a slot for.
                durations.append({"refused": 0.0, "slow": W8_TIMEOUT_S}.get(
                    kind, delay))
            case = Case("W8", f"{n}@{c}", urls, expected, W8_TIMEOUT_S, "w8",
                        names=n)
            case.ideal_s = ideal_schedule_s(durations, c)
            case.mix = collections.Counter(
                (scheme, kind) for scheme, kind, _ in targets)
            self.cases.append(case)

    # A run ------------------------------------------------------------------

    def new_run_files(self, case, peer):
        """This run's tag and URL list (the tag in every URL's query, so
        nginx's log attributes each request to its run)."""
        self.tags += 1
        tag = f"t{self.tags}"
        short = re.sub(r"[^a-z]+", "", peer.lower())[:12]
        urls_file = self.path(f"{tag}-{case.workload}-{short}.urls")
        write_lines(urls_file, [u.replace("@TAG@", tag) for u in case.urls])
        return tag, urls_file

    def run_case(self, case, peer):
        runner = {"fanprobe": self.run_fanprobe,
                  "fanprobe engine alone": self.run_engine,
                  "curl": self.run_curl, "aiohttp": self.run_aiohttp,
                  "blackbox_exporter": self.run_blackbox}[peer]
        tag, urls_file = self.new_run_files(case, peer)
        load = load_average()
        self.dns_log.mark()
        udp0 = udp_counters(self.dnsmasq.pid)
        dns_cpu0 = proc_cpu_s(self.dnsmasq.pid)
        result = runner(case, urls_file, tag)
        if result is None:
            return None
        kinds, counts, run = result
        dns = self.dns_log.since_mark()
        udp1 = udp_counters(self.dnsmasq.pid)
        run.update(dns)
        run["udp_rcvbuf_errors"] = (udp1.get("RcvbufErrors", 0)
                                    - udp0.get("RcvbufErrors", 0))
        run["resolver_cpu_us"] = ((proc_cpu_s(self.dnsmasq.pid) - dns_cpu0)
                                  * 1e6 / case.n)
        run["tag"] = tag
        run["loadavg"] = load
        run["n"] = case.n
        run["outcomes"] = dict(counts)
        run["ok"] = counts.get("ok", 0)
        run.update(self.judge(case, kinds, counts))
        if run.get("wall_s"):
            run["rate"] = case.n / run["wall_s"]
            if case.ideal_s:
                run["x_ideal"] = run["wall_s"] / case.ideal_s
        self.runs_by_tag[tag] = run
        return run

    @staticmethod
    def judge(case, kinds, counts):
        """Right outcomes and the wrong ones by kind ("expected->got").
        With per-probe outcomes each probe is checked against its own
        target; blackbox_exporter's arrive as counts only, so its right
        outcomes are the overlap of the two histograms (an upper bound)."""
        wrong = collections.Counter()
        if kinds is not None:
            right = 0
            for want, got in zip(case.expected, kinds):
                if want == got:
                    right += 1
                else:
                    wrong[f"{want}->{got}"] += 1
            per_probe = True
        else:
            want = collections.Counter(case.expected)
            right = sum(min(want[k], counts.get(k, 0)) for k in want)
            for kind, count in counts.items():
                extra = count - want.get(kind, 0)
                if extra > 0:
                    wrong[f"?->{kind}"] += extra
            missing = case.n - sum(counts.values())
            if missing > 0:
                wrong["?->none"] += missing
            per_probe = False
        return {"right": right, "wrong": dict(wrong),
                "per_probe_check": per_probe}

    def run_fanprobe(self, case, urls_file, tag):
        if not self.server_binary or not self.stream_client:
            return None
        self.restart_fanprobe()
        pid = self.fanprobe.pid
        reset_hwm(pid)
        cpu0 = proc_cpu_s(pid)
        outcomes_file = self.path(f"{tag}.outcomes")
        cmd = [self.stream_client, f"--server={GRPC_ADDRESS}",
               f"--urls_file={urls_file}", f"--concurrency={CONCURRENCY}",
               f"--timeout={case.timeout_s}s", f"--ca_file={self.ca_file}",
               f"--outcomes_file={outcomes_file}"]
        rc, wall, _, _, out = run_child(self.ns.exec(cmd), RUN_TIMEOUT_S,
                                        self.bench.out_path("fanprobe"))
        cpu = proc_cpu_s(pid) - cpu0
        report = self.bench.parse_json(out)
        if report is None or not os.path.exists(outcomes_file):
            return [None] * case.n, {"none": case.n}, {"failed": True}
        kinds = self.read_outcomes(outcomes_file, case.n, fanprobe_kind)
        return kinds, collections.Counter(kinds), {
            "wall_s": report["wall_s"], "cpu_us": cpu * 1e6 / case.n,
            "rss_mb": proc_hwm_kb(pid) / 1024}

    def run_engine(self, case, urls_file, tag):
        if not self.engine_bench or "outcomes_file" not in self.engine_flags:
            return None
        outcomes_file = self.path(f"{tag}.outcomes")
        cmd = [self.engine_bench, f"--urls_file={urls_file}",
               f"--concurrency={CONCURRENCY}", "--json",
               f"--timeout={case.timeout_s}s", f"--ca_file={self.ca_file}",
               f"--outcomes_file={outcomes_file}"]
        if "dns_server" in self.engine_flags:
            cmd.append(f"--dns_server={DNS_SERVER}")
        rc, wall, _, _, out = run_child(self.ns.exec(cmd), RUN_TIMEOUT_S,
                                        self.bench.out_path("engine"))
        report = self.bench.parse_json(out)
        if report is None or not os.path.exists(outcomes_file):
            return [None] * case.n, {"none": case.n}, {"failed": True}
        kinds = self.read_outcomes(outcomes_file, case.n, fanprobe_kind)
        return kinds, collections.Counter(kinds), {
            "wall_s": report["wall_s"],
            "cpu_us": report["cpu_us_per_probe"],
            "rss_mb": report["maxrss_kb"] / 1024}

    def run_aiohttp(self, case, urls_file, tag):
        outcomes_file = self.path(f"{tag}.outcomes")
        cmd = [PYTHON, os.path.join(HERE, "peers", "aiohttp_fanout.py"),
               "--file", urls_file, "--concurrency", str(CONCURRENCY),
               "--fresh", "--timeout", str(case.timeout_s), "--cafile",
               self.ca_file, "--outcomes", outcomes_file]
        rc, wall, _, _, out = run_child(self.ns.exec(cmd), RUN_TIMEOUT_S,
                                        self.bench.out_path("aiohttp"))
        report = self.bench.parse_json(out)
        if report is None or not os.path.exists(outcomes_file):
            return [None] * case.n, {"none": case.n}, {"failed": True}
        kinds = self.read_outcomes(outcomes_file, case.n, str)
        return kinds, collections.Counter(kinds), {
            "wall_s": report["wall_s"],
            "cpu_us": report["cpu_s"] * 1e6 / case.n,
            "rss_mb": report["maxrss_kb"] / 1024}

    def run_curl(self, case, urls_file, tag):
        """CURL_SHARDS curl --parallel processes at once, shard s probing
        every URL whose index is s modulo CURL_SHARDS; CPU is their sum,
        wall time until the last one exits."""
        with open(urls_file) as f:
            urls = f.read().split()
        per_shard = CONCURRENCY // CURL_SHARDS
        procs = []
        started = time.perf_counter()
        try:
            for shard in range(CURL_SHARDS):
                config = self.path(f"{tag}.curl{shard}")
                with open(config, "w") as out:
                    for url in urls[shard::CURL_SHARDS]:
                        out.write(f'url = "{url}"\noutput = "/dev/null"\n')
                cmd = ["curl", "--silent", "--parallel",
                       "--parallel-immediate", "--parallel-max",
                       str(per_shard), "--max-time", str(case.timeout_s),
                       "--cacert", self.ca_file, "--header",
                       "Connection: close", "--write-out",
                       "%{urlnum} %{exitcode} %{http_code}\\n", "--config",
                       config]
                out_path = self.bench.out_path(f"curl{shard}")
                stdout = open(out_path, "w")
                proc = subprocess.Popen(self.ns.exec(cmd), stdout=stdout,
                                        stderr=subprocess.DEVNULL)
                stdout.close()
                watcher = HwmWatcher(proc.pid)
                watcher.start()
                procs.append((shard, proc, out_path, watcher))
            cpu = 0.0
            deadline = time.monotonic() + RUN_TIMEOUT_S
            for _, proc, _, watcher in procs:
                timer = threading.Timer(
                    max(0.0, deadline - time.monotonic()), proc.kill)
                timer.start()
                try:
                    _, status, usage = os.wait4(proc.pid, 0)
                finally:
                    timer.cancel()
                    watcher.stopped.set()
                proc.returncode = os.waitstatus_to_exitcode(status)
                cpu += usage.ru_utime + usage.ru_stime
            wall = time.perf_counter() - started
        finally:
            for _, proc, _, _ in procs:
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()
        kinds = [None] * case.n
        for shard, _, out_path, _ in procs:
            with open(out_path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) != 3:
                        continue
                    index = shard + int(parts[0]) * CURL_SHARDS
                    if index < case.n:
                        kinds[index] = curl_kind(int(parts[1]), int(parts[2]))
        kinds = [k or "none" for k in kinds]
        return kinds, collections.Counter(kinds), {
            "wall_s": wall, "cpu_us": cpu * 1e6 / case.n,
            "rss_mb": max(w.peak_kb for _, _, _, w in procs) / 1024}

    def run_blackbox(self, case, urls_file, tag):
        """wrk drives blackbox_exporter's /probe at concurrency -c, each URL
        once (peers/blackbox_once.lua); blackbox_exporter's own CPU, not
        wrk's, is the figure, as in W2."""
        if not self.blackbox or not self.blackbox.alive():
            return None
        pid = self.blackbox.pid
        threads = 2
        done_prefix = self.path(f"{tag}.blackbox")
        cmd = ["wrk", f"-t{threads}", f"-c{CONCURRENCY}",
               f"-d{RUN_TIMEOUT_S}s", "--timeout", "30s", "-s",
               os.path.join(HERE, "peers", "blackbox_once.lua"),
               f"http://{BLACKBOX_ADDRESS}", "--", urls_file, case.module,
               str(threads), str(case.timeout_s), done_prefix]
        done_files = [f"{done_prefix}.{i}" for i in range(threads)]
        reset_hwm(pid)
        cpu0 = proc_cpu_s(pid)
        out_path = self.bench.out_path("blackbox")
        with open(out_path, "w") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(self.ns.exec(cmd), stdout=out,
                                    stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + RUN_TIMEOUT_S
                while (not all(os.path.exists(p) for p in done_files)
                       and proc.poll() is None
                       and time.monotonic() < deadline):
                    time.sleep(0.01)
                wall = time.perf_counter() - started
                cpu = proc_cpu_s(pid) - cpu0
                complete = all(os.path.exists(p) for p in done_files)
                # wrk's main thread sleeps for -d whatever its threads do;
                # SIGINT ends that sleep and wrk prints its summary.
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        counts = collections.Counter()
        for path in done_files:
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        kind, count = line.split()
                        counts[kind] += int(count)
        run = {"wall_s": wall if complete else None,
               "cpu_us": cpu * 1e6 / case.n,
               "rss_mb": proc_hwm_kb(pid) / 1024}
        if not complete:
            run["failed"] = True
        return None, counts, run

    @staticmethod
    def read_outcomes(path, n, to_kind):
        kinds = ["none"] * n
        with open(path) as f:
            for line in f:
                index, name = line.split()
                if int(index) < n:
                    kinds[int(index)] = to_kind(name)
        return kinds

    # The whole of W6-W8 -----------------------------------------------------

    def run(self):
        """Repeat 1 of every case and peer, then more repeats while the
        budget lasts; peers of a case run back to back (round-robin), so
        drift on the shared machine hits them alike."""
        started = time.monotonic()
        rep_times = []
        for rep in range(self.args.repeats):
            if rep > 0:
                projected = time.monotonic() - started + max(rep_times)
                if projected > self.args.netns_budget:
                    self.bench.notes.append(
                        f"Ran {rep} repeat(s) of W6-W8, not "
                        f"{self.args.repeats}: another would end past the "
                        f"{self.args.netns_budget:.0f} s budget.")
                    break
            t0 = time.monotonic()
            self.bench.rep = rep
            log(f"W6-W8 repeat {rep + 1} (load average {load_average()})")
            for case in self.cases:
                for peer in PEERS:
                    self.bench.record(case.workload, case.label, peer,
                                      self.run_case(case, peer))
                    self.access_log.read()
            rep_times.append(time.monotonic() - t0)
        self.meta["repeats_done"] = len(rep_times)
        self.meta["elapsed_s"] = round(time.monotonic() - started, 1)

    def teardown(self):
        """Stops every service (nginx last but one, so W8's slow answers
        are logged), reads the rest of nginx's log, deletes the
        namespace."""
        try:
            nginx = getattr(self, "nginx", None)
            if nginx and nginx.alive():
                # A graceful stop waits for requests still sleeping (W8's
                # 5 s targets of the last run), which are then logged.
                nginx.proc.send_signal(signal.SIGQUIT)
                try:
                    nginx.proc.wait(timeout=W8_SLOW_S + 5)
                except subprocess.TimeoutExpired:
                    pass
            for service in reversed(self.services):
                service.stop()
            if hasattr(self, "access_log"):
                self.access_log.read()
                for tag, run in self.runs_by_tag.items():
                    run.update(self.access_log.counts(tag))
        finally:
            self.ns.delete()

    def describe(self):
        return {
            "dnsmasq": tool_version(["dnsmasq", "--version"]),
            "openssl": tool_version(["openssl", "version"]),
            "namespace": self.ns.name,
        }
