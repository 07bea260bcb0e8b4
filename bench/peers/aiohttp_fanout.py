#!/usr/bin/python3
"""The asyncio tutorials' fan-out, as a benchmark peer.

One shared ClientSession over a TCPConnector(limit=concurrency), and
asyncio.gather over fetches bounded by a semaphore of the same size -- the
shape every aiohttp "10k requests" tutorial ends with.  --fresh sets
force_close so every request opens its own connection (what fanprobe and
blackbox_exporter do by default); without it connections are kept alive and
reused.

Prints one JSON object on stdout:
  n, ok        probes and probes answered 2xx/3xx
  wall_s       from the first request scheduled to the last result
  first_s      from the same start to the first completed fetch
  cpu_s        user + system CPU of this process during that interval
  maxrss_kb    the process's peak RSS, VmHWM (interpreter included)

Usage: aiohttp_fanout.py --file URLS --concurrency N [--fresh] [--timeout S]
"""

import argparse
import asyncio
import json
import resource
import sys
import time

import aiohttp


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_kb():
    # VmHWM, not ru_maxrss: Linux folds the parent's peak at fork/exec into
    # ru_maxrss, which would charge the bench driver's memory to this peer.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


async def fan_out(urls, concurrency, fresh, timeout):
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=fresh)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    done_at = []

    async with aiohttp.ClientSession(connector=connector,
                                     timeout=client_timeout) as session:

        async def fetch(url):
            async with semaphore:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        ok = 200 <= response.status < 400
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                done_at.append(time.perf_counter())
                return ok

        start = time.perf_counter()
        cpu_start = cpu_seconds()
        results = await asyncio.gather(*(fetch(url) for url in urls))
        end = time.perf_counter()
        cpu_end = cpu_seconds()

    return {
        "n": len(urls),
        "ok": sum(results),
        "wall_s": end - start,
        "first_s": (min(done_at) - start) if done_at else None,
        "cpu_s": cpu_end - cpu_start,
        "maxrss_kb": peak_rss_kb(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", required=True, help="one URL per line")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--fresh", action="store_true",
                        help="force_close: a new connection per request")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="per-request total timeout, seconds")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(args.file) as f:
        urls = [line.strip() for line in f if line.strip()]
    report = asyncio.run(
        fan_out(urls, args.concurrency, args.fresh, args.timeout))
    report["tool"] = "aiohttp"
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
