#!/usr/bin/python3
"""The asyncio tutorials' fan-out, as a benchmark peer.

One shared ClientSession over a TCPConnector(limit=concurrency), and
asyncio.gather over fetches bounded by a semaphore of the same size -- the
shape every aiohttp "10k requests" tutorial ends with.  --fresh sets
force_close so every request opens its own connection (what fanprobe and
blackbox_exporter do by default); without it connections are kept alive and
reused.  --cafile verifies https targets against that CA, the tutorials' way:
an ssl.create_default_context(cafile=...) handed to the connector.

Prints one JSON object on stdout:
  n, ok        probes and probes answered 2xx/3xx
  wall_s       from the first request scheduled to the last result
  first_s      from the same start to the first completed fetch
  cpu_s        user + system CPU of this process during that interval
  maxrss_kb    the process's peak RSS, VmHWM (interpreter included)
  outcomes     count per kind: ok, bad_status, timeout, dns_error,
               connect_error, tls_error, io_error
--outcomes FILE also writes "<index> <kind>" per URL, in list order.

Usage: aiohttp_fanout.py --file URLS --concurrency N [--fresh] [--timeout S]
                         [--cafile CA] [--outcomes FILE]
"""

import argparse
import asyncio
import collections
import json
import resource
import socket
import ssl
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


def failure_kind(error):
    """The kind of a failed fetch, in the bench's common vocabulary."""
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    if isinstance(error, (aiohttp.ClientConnectorCertificateError,
                          aiohttp.ClientSSLError)):
        return "tls_error"
    if isinstance(error, aiohttp.ClientConnectorError):
        if isinstance(error.os_error, socket.gaierror):
            return "dns_error"
        return "connect_error"
    return "io_error"


async def fan_out(urls, concurrency, fresh, timeout, cafile):
    semaphore = asyncio.Semaphore(concurrency)
    # None keeps aiohttp's default verification (the system's CAs).
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=fresh,
                                     ssl=context)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    done_at = []

    async with aiohttp.ClientSession(connector=connector,
                                     timeout=client_timeout) as session:

        async def fetch(url):
            async with semaphore:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        kind = ("ok" if 200 <= response.status < 400
                                else "bad_status")
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    kind = failure_kind(error)
                done_at.append(time.perf_counter())
                return kind

        start = time.perf_counter()
        cpu_start = cpu_seconds()
        results = await asyncio.gather(*(fetch(url) for url in urls))
        end = time.perf_counter()
        cpu_end = cpu_seconds()

    return results, {
        "n": len(urls),
        "ok": results.count("ok"),
        "wall_s": end - start,
        "first_s": (min(done_at) - start) if done_at else None,
        "cpu_s": cpu_end - cpu_start,
        "maxrss_kb": peak_rss_kb(),
        "outcomes": dict(collections.Counter(results)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", required=True, help="one URL per line")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--fresh", action="store_true",
                        help="force_close: a new connection per request")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="per-request total timeout, seconds")
    parser.add_argument("--cafile", help="verify https against this CA")
    parser.add_argument("--outcomes", help="write '<index> <kind>' lines")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(args.file) as f:
        urls = [line.strip() for line in f if line.strip()]
    kinds, report = asyncio.run(
        fan_out(urls, args.concurrency, args.fresh, args.timeout,
                args.cafile))
    if args.outcomes:
        with open(args.outcomes, "w") as out:
            out.writelines(f"{i} {kind}\n" for i, kind in enumerate(kinds))
    report["tool"] = "aiohttp"
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
