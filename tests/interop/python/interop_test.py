"""fanprobe.v1.Prober from Python: Debian's grpcio against the real server.

A client written the way the README tells a Python user to write one: stubs
generated from proto/fanprobe/v1/prober.proto by the system protoc and
grpc_python_plugin (tests/interop/CMakeLists.txt does that at build time),
Debian's python3-grpcio and python3-protobuf, and a fanprobe-server process
on a free loopback port probing fanprobe-demo-target, also on loopback.
What it checks is what a client in another language relies on: the wire
format of every message (proto3 `optional` fields included), each
return-when rule, the pending indices and the summary, both RPCs, and
INVALID_ARGUMENT with the field path in its message.

Both processes are killed when the test ends, however it ends: stopped with
SIGTERM by the test's cleanup, and started under `setpriv --pdeathsig KILL`
so that even a test killed outright (ctest's timeout) takes them with it.

Run by ctest (tests/interop/CMakeLists.txt):
  FANPROBE_SERVER=build/fanprobe-server \
  FANPROBE_DEMO_TARGET=build/fanprobe-demo-target \
  FANPROBE_PYTHON_STUBS=build/tests/interop/python \
    /usr/bin/python3 tests/interop/python/interop_test.py
"""

import collections
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
from google.protobuf import any_pb2
from google.protobuf import duration_pb2

sys.path.insert(0, os.environ["FANPROBE_PYTHON_STUBS"])
from fanprobe.v1 import prober_pb2 as pb  # noqa: E402
from fanprobe.v1 import prober_pb2_grpc as pb_grpc  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[3]
SERVER = os.environ["FANPROBE_SERVER"]
DEMO_TARGET = os.environ["FANPROBE_DEMO_TARGET"]

START_TIMEOUT_SECONDS = 30
# Every call's deadline: far beyond any batch here (the longest ends at its
# 2 s timeout), so a hung server fails the test instead of hanging it.
CALL_DEADLINE_SECONDS = 30
# Far longer than any batch here runs: a probe of it completes only if the
# batch failed to end when its rule said so.
SLOW = "/delay/30"


# The addresses README.md's recipes use, rewritten to this test's.
README_GRPC = "127.0.0.1:50051"
README_DEMO = "127.0.0.1:8081"


def readme_section_blocks(title):
    """The fenced blocks under README.md's `### title`: (language, text)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^### " + re.escape(title) + r"\n(.*?)(?=^##)", text,
                        re.DOTALL | re.MULTILINE)
    if not section:
        raise AssertionError(f"README.md has no section ### {title}")
    return re.findall(r"^```(\w*)\n(.*?)^```$", section.group(1),
                      re.DOTALL | re.MULTILINE)


def without_installs(script):
    """A shell block less its package installs (tests install nothing)."""
    kept = []
    skipping = False
    for line in script.splitlines():
        if not skipping and re.match(r"(sudo )?(apt-get|apt|npm) install\b",
                                     line):
            skipping = True
        if not skipping:
            kept.append(line)
        if skipping and not line.rstrip().endswith("\\"):
            skipping = False
    return "\n".join(kept)


class Process:
    """A child process whose output goes to a file, read for its address.

    Killed with the test process (setpriv --pdeathsig), or by stop().
    """

    def __init__(self, argv, log_path, address_pattern):
        self.log_path = pathlib.Path(log_path)
        self.log = open(self.log_path, "w+b")
        self.process = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--"] + argv,
            stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT)
        self.match = None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            self.match = re.search(address_pattern, self.output())
            if self.match:
                return
            time.sleep(0.02)
        self.stop()
        raise AssertionError(f"{argv[0]} did not start:\n{self.output()}")

    def output(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM, then the exit code (SIGKILL if it does not exit)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.log.close()
        return code


def seconds(value):
    return duration_pb2.Duration(seconds=int(value),
                                 nanos=int(round((value % 1) * 1e9)))


def field_violation(status_bytes, message):
    """The FieldViolation in a google.rpc.Status (code 1, message 2, details
    3: Any), read field by field: Debian packages no Python google.rpc."""
    def varint(data, at):
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, at
    fields = collections.defaultdict(list)
    at = 0
    while at < len(status_bytes):
        tag, at = varint(status_bytes, at)
        if tag & 7 == 0:
            value, at = varint(status_bytes, at)
        elif tag & 7 == 2:
            length, at = varint(status_bytes, at)
            value, at = status_bytes[at:at + length], at + length
        else:
            raise AssertionError(f"not a google.rpc.Status: wire type {tag & 7}")
        fields[tag >> 3].append(value)
    if fields[1] != [grpc.StatusCode.INVALID_ARGUMENT.value[0]]:
        raise AssertionError(f"code {fields[1]}")
    if fields[2] != [message.encode()]:
        raise AssertionError(f"message {fields[2]}")
    if len(fields[3]) != 1:
        raise AssertionError(f"{len(fields[3])} details")
    detail = any_pb2.Any.FromString(fields[3][0])
    violation = pb.FieldViolation()
    if not detail.Unpack(violation):
        raise AssertionError(f"a detail of type {detail.type_url}")
    return violation


def read_stream(call, group_sizes=None):
    """The results of a StreamProbes or ProbeStream call in arrival order,
    and its summary.

    Asserts the stream's shape: results, then exactly one summary, last.
    Results sent together (max_results_per_event) are unpacked in order,
    and each event's count appended to `group_sizes`.
    """
    results = []
    summary = None
    for event in call:
        if summary is not None:
            raise AssertionError(f"an event after the summary: {event}")
        kind = event.WhichOneof("event")
        if kind == "result":
            results.append(event.result)
        elif kind == "results":
            if group_sizes is None:
                raise AssertionError(f"results together, unasked: {event}")
            group_sizes.append(len(event.results.results))
            results.extend(event.results.results)
        elif kind == "summary":
            summary = event.summary
        else:
            raise AssertionError(f"an event with neither oneof: {event}")
    if summary is None:
        raise AssertionError("the stream ended without a summary")
    return results, summary


class InteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="interop_python."))
        cls.addClassCleanup(shutil.rmtree, scratch, ignore_errors=True)
        demo = Process([DEMO_TARGET, "--address=127.0.0.1:0"],
                       scratch / "demo.log",
                       r"listening on (http://127\.0\.0\.1:\d+)/")
        cls.addClassCleanup(demo.stop)
        server = Process([SERVER, "--grpc_address=127.0.0.1:0",
                          "--http_address="],
                         scratch / "server.log",
                         r'"event":"listening","address":"([^"]+)"')
        cls.addClassCleanup(server.stop)
        cls.target = demo.match.group(1)
        cls.grpc_address = server.match.group(1)
        cls.channel = grpc.insecure_channel(cls.grpc_address)
        cls.addClassCleanup(cls.channel.close)
        cls.stub = pb_grpc.ProberStub(cls.channel)
        # A port that refuses connections for as long as the tests run: bound,
        # so nothing else takes it, and not listening.
        cls.refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.refusing.bind(("127.0.0.1", 0))
        cls.addClassCleanup(cls.refusing.close)
        cls.refused_url = "http://127.0.0.1:%d/" % cls.refusing.getsockname()[1]

    def url(self, path):
        return self.target + path

    def stream(self, request):
        return read_stream(
            self.stub.StreamProbes(request, timeout=CALL_DEADLINE_SECONDS))

    def assert_summary(self, summary, reason, total, succeeded, failed,
                       pending):
        self.assertEqual(pb.EndReason.Name(summary.reason),
                         pb.EndReason.Name(reason))
        self.assertEqual(summary.total, total)
        self.assertEqual(summary.completed, succeeded + failed)
        self.assertEqual(summary.succeeded, succeeded)
        self.assertEqual(summary.failed, failed)
        self.assertEqual(summary.cancelled, len(pending))
        self.assertEqual(list(summary.pending_indices), pending)

    def assert_result(self, result, outcome, status_code):
        self.assertEqual(
            (pb.Outcome.Name(result.outcome), result.status_code),
            (pb.Outcome.Name(outcome), status_code), result)

    def test_stream_delivers_each_result_then_the_summary(self):
        targets = [
            pb.ProbeTarget(url=self.url("/status/200"), id="ok",
                           labels={"env": "prod", "team": "web"}),
            pb.ProbeTarget(url=self.url("/status/503"), id="unavailable"),
            # Sent last by the target, so it arrives last: results stream
            # as they complete, not in request order.
            pb.ProbeTarget(url=self.url("/delay/2"), id="slow"),
            pb.ProbeTarget(url=self.refused_url, id="refused"),
            pb.ProbeTarget(url="ftp://127.0.0.1/", id="ftp"),
            # proto3 `optional` fields, the reason the stubs come from the
            # system protoc: max_redirects set to 1 (a set field, sent) and
            # a valid_status override that makes a 503 OK.
            pb.ProbeTarget(url=self.url("/redirect/2"), id="redirects",
                           options=pb.ProbeOptions(max_redirects=1)),
            pb.ProbeTarget(
                url=self.url("/status/503"), id="503-expected",
                options=pb.ProbeOptions(valid_status=pb.StatusRanges(
                    ranges=[pb.StatusRange(min=500, max=599)]))),
        ]
        results, summary = self.stream(pb.ProbeBatchRequest(targets=targets))

        self.assertEqual(sorted(r.index for r in results),
                         list(range(len(targets))))
        self.assertEqual(results[-1].id, "slow", [r.id for r in results])
        by_id = {r.id: r for r in results}
        for result in results:
            self.assertEqual(result.url, targets[result.index].url)
            self.assertEqual(result.id, targets[result.index].id)

        ok = by_id["ok"]
        self.assert_result(ok, pb.OUTCOME_OK, 200)
        self.assertEqual(dict(ok.labels), {"env": "prod", "team": "web"})
        self.assertEqual(ok.error, "")
        self.assertEqual(ok.http_version, "HTTP/1.1")
        self.assertEqual(ok.remote_ip, "127.0.0.1")
        self.assertEqual(ok.body_bytes, len("status 200\n"))
        self.assertGreater(ok.timings.total.ToNanoseconds(), 0)
        self.assertLessEqual(ok.timings.first_byte.ToNanoseconds(),
                             ok.timings.total.ToNanoseconds())

        self.assert_result(by_id["unavailable"], pb.OUTCOME_UNEXPECTED_STATUS,
                           503)
        self.assertIn("503", by_id["unavailable"].error)
        self.assert_result(by_id["slow"], pb.OUTCOME_OK, 200)
        self.assertGreaterEqual(by_id["slow"].timings.total.ToNanoseconds(),
                                2 * 10**9)
        self.assert_result(by_id["refused"], pb.OUTCOME_CONNECT_ERROR, 0)
        self.assertNotEqual(by_id["refused"].error, "")
        self.assert_result(by_id["ftp"], pb.OUTCOME_INVALID_TARGET, 0)
        self.assertIn("ftp", by_id["ftp"].error)
        redirects = by_id["redirects"]
        self.assert_result(redirects, pb.OUTCOME_TOO_MANY_REDIRECTS, 302)
        self.assertEqual(redirects.redirects, 1)
        self.assertEqual([h.url for h in redirects.hops],
                         [self.url("/redirect/2"), self.url("/redirect/1")])
        self.assert_result(by_id["503-expected"], pb.OUTCOME_OK, 503)

        self.assert_summary(summary, pb.END_REASON_ALL_COMPLETED,
                            total=7, succeeded=3, failed=4, pending=[])
        self.assertGreaterEqual(summary.elapsed.ToNanoseconds(), 2 * 10**9)

    def test_a_retried_probe_lists_every_attempt(self):
        retry = pb.RetryPolicy(max_attempts=3)
        retry.initial_backoff.FromMilliseconds(10)
        retried = pb.ProbeOptions(retry=retry)
        results, summary = self.stream(pb.ProbeBatchRequest(targets=[
            pb.ProbeTarget(url=self.refused_url, options=retried),
            pb.ProbeTarget(url=self.url("/status/200"), options=retried),
            pb.ProbeTarget(url=self.refused_url),
        ]))
        by_index = {r.index: r for r in results}
        refused = by_index[0]
        self.assert_result(refused, pb.OUTCOME_CONNECT_ERROR, 0)
        self.assertEqual([pb.Outcome.Name(a.outcome) for a in refused.attempts],
                         ["OUTCOME_CONNECT_ERROR"] * 3)
        self.assertEqual(refused.attempts[0].start.ToNanoseconds(), 0)
        # Each began after the one before and at least 8 ms of backoff.
        starts = [a.start.ToNanoseconds() for a in refused.attempts]
        self.assertGreaterEqual(starts[1], 8 * 10**6)
        self.assertGreater(starts[2], starts[1])
        self.assertNotEqual(refused.attempts[2].error, "")
        # A success at once is one attempt, listed.
        self.assert_result(by_index[1], pb.OUTCOME_OK, 200)
        self.assertEqual([pb.Outcome.Name(a.outcome)
                          for a in by_index[1].attempts], ["OUTCOME_OK"])
        self.assertEqual(by_index[1].attempts[0].status_code, 200)
        # Without a retry policy, no attempts are listed.
        self.assertEqual(len(by_index[2].attempts), 0)
        self.assert_summary(summary, pb.END_REASON_ALL_COMPLETED,
                            total=3, succeeded=1, failed=2, pending=[])

    def test_results_sent_together_arrive_each_once(self):
        targets = [pb.ProbeTarget(url=self.url("/status/200"))
                   for _ in range(300)]
        sizes = []
        results, summary = read_stream(
            self.stub.StreamProbes(
                pb.ProbeBatchRequest(targets=targets, max_concurrency=50,
                                     max_results_per_event=40),
                timeout=CALL_DEADLINE_SECONDS),
            group_sizes=sizes)
        self.assertEqual(sorted(r.index for r in results), list(range(300)))
        self.assertEqual(sum(sizes), 300)
        self.assertTrue(all(1 <= n <= 40 for n in sizes), sizes)
        for result in results:
            self.assert_result(result, pb.OUTCOME_OK, 200)
        self.assert_summary(summary, pb.END_REASON_ALL_COMPLETED,
                            total=300, succeeded=300, failed=0, pending=[])

    def test_probe_stream_feeds_targets_message_by_message(self):
        # A generator is what grpcio's stream-stream call reads requests
        # from: the settings first, then targets in chunks, as a client with
        # an unbounded list would send them.
        def requests():
            yield pb.ProbeStreamRequest(batch=pb.ProbeBatchRequest(
                max_concurrency=20, max_results_per_event=64))
            for chunk in range(5):
                yield pb.ProbeStreamRequest(targets=[
                    pb.ProbeTarget(url=self.url("/status/200"),
                                   id="%d-%d" % (chunk, i))
                    for i in range(100)])
            yield pb.ProbeStreamRequest(
                targets=[pb.ProbeTarget(url="ftp://127.0.0.1/", id="ftp")])

        sizes = []
        results, summary = read_stream(
            self.stub.ProbeStream(requests(), timeout=CALL_DEADLINE_SECONDS),
            group_sizes=sizes)
        self.assertEqual(sorted(r.index for r in results), list(range(501)))
        self.assertEqual(sum(sizes), 501)
        by_index = {r.index: r for r in results}
        # Indices run on across messages.
        self.assertEqual(by_index[0].id, "0-0")
        self.assertEqual(by_index[499].id, "4-99")
        self.assert_result(by_index[250], pb.OUTCOME_OK, 200)
        self.assert_result(by_index[500], pb.OUTCOME_INVALID_TARGET, 0)
        self.assert_summary(summary, pb.END_REASON_ALL_COMPLETED,
                            total=501, succeeded=500, failed=1, pending=[])

    def test_probe_stream_needs_its_settings_first(self):
        def requests():
            yield pb.ProbeStreamRequest(
                targets=[pb.ProbeTarget(url=self.url("/status/200"))])

        with self.assertRaises(grpc.RpcError) as caught:
            read_stream(self.stub.ProbeStream(
                requests(), timeout=CALL_DEADLINE_SECONDS))
        self.assertEqual(caught.exception.code(),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(
            caught.exception.details(),
            "batch: the first message must hold the batch's settings")

    def test_first_completed_ends_at_the_first_result(self):
        results, summary = self.stream(pb.ProbeBatchRequest(
            targets=[pb.ProbeTarget(url=self.url(SLOW)),
                     pb.ProbeTarget(url=self.url("/status/404")),
                     pb.ProbeTarget(url=self.url(SLOW))],
            return_when=pb.RETURN_WHEN_FIRST_COMPLETED))
        # Whatever its outcome: a 404 ends it as well as an OK would.
        self.assertEqual([r.index for r in results], [1])
        self.assert_result(results[0], pb.OUTCOME_UNEXPECTED_STATUS, 404)
        self.assert_summary(summary, pb.END_REASON_FIRST_COMPLETED,
                            total=3, succeeded=0, failed=1, pending=[0, 2])

    def test_first_exception_ends_at_the_first_failure(self):
        results, summary = self.stream(pb.ProbeBatchRequest(
            targets=[pb.ProbeTarget(url=self.url(SLOW)),
                     pb.ProbeTarget(url=self.url("/status/500")),
                     pb.ProbeTarget(url=self.url(SLOW))],
            return_when=pb.RETURN_WHEN_FIRST_EXCEPTION))
        self.assertEqual([r.index for r in results], [1])
        self.assert_result(results[0], pb.OUTCOME_UNEXPECTED_STATUS, 500)
        self.assert_summary(summary, pb.END_REASON_FIRST_EXCEPTION,
                            total=3, succeeded=0, failed=1, pending=[0, 2])

    def test_first_exception_without_a_failure_ends_all_completed(self):
        results, summary = self.stream(pb.ProbeBatchRequest(
            targets=[pb.ProbeTarget(url=self.url("/delay/0.2")),
                     pb.ProbeTarget(url=self.url("/status/204"))],
            return_when=pb.RETURN_WHEN_FIRST_EXCEPTION))
        self.assertEqual(sorted(r.index for r in results), [0, 1])
        self.assertEqual([pb.Outcome.Name(r.outcome) for r in results],
                         ["OUTCOME_OK"] * 2)
        self.assert_summary(summary, pb.END_REASON_ALL_COMPLETED,
                            total=2, succeeded=2, failed=0, pending=[])

    def test_batch_timeout_ends_with_the_rest_pending(self):
        results, summary = self.stream(pb.ProbeBatchRequest(
            targets=[pb.ProbeTarget(url=self.url("/status/200")),
                     pb.ProbeTarget(url=self.url(SLOW)),
                     pb.ProbeTarget(url=self.url(SLOW))],
            timeout=seconds(2)))
        self.assertEqual([r.index for r in results], [0])
        self.assert_result(results[0], pb.OUTCOME_OK, 200)
        self.assert_summary(summary, pb.END_REASON_TIMEOUT,
                            total=3, succeeded=1, failed=0, pending=[1, 2])
        # The batch's own clock: it ended at its timeout, not before, and not
        # when the slow probes would have.
        self.assertGreaterEqual(summary.elapsed.ToNanoseconds(), 2 * 10**9)
        self.assertLess(summary.elapsed.ToNanoseconds(), 20 * 10**9)

    def test_probe_batch_answers_done_in_request_order(self):
        response = self.stub.ProbeBatch(pb.ProbeBatchRequest(
            targets=[pb.ProbeTarget(url=self.url("/delay/0.3"), id="a"),
                     pb.ProbeTarget(url=self.url("/status/404"), id="b"),
                     pb.ProbeTarget(url=self.url("/bytes/100"), id="c")],
            defaults=pb.ProbeOptions(method="HEAD")),
            timeout=CALL_DEADLINE_SECONDS)
        self.assertEqual([(r.index, r.id) for r in response.done],
                         [(0, "a"), (1, "b"), (2, "c")])
        self.assert_result(response.done[0], pb.OUTCOME_OK, 200)
        self.assert_result(response.done[1], pb.OUTCOME_UNEXPECTED_STATUS, 404)
        self.assert_result(response.done[2], pb.OUTCOME_OK, 200)
        # HEAD, from the batch's defaults: no body was read.
        self.assertEqual(response.done[2].body_bytes, 0)
        self.assertEqual(list(response.pending_indices), [])
        self.assert_summary(response.summary, pb.END_REASON_ALL_COMPLETED,
                            total=3, succeeded=2, failed=1, pending=[])

    def test_probe_batch_lists_pending_beside_the_summary(self):
        response = self.stub.ProbeBatch(pb.ProbeBatchRequest(
            targets=[pb.ProbeTarget(url=self.url(SLOW)),
                     pb.ProbeTarget(url=self.url(SLOW)),
                     pb.ProbeTarget(url=self.url("/status/200")),
                     pb.ProbeTarget(url=self.url(SLOW))],
            return_when=pb.RETURN_WHEN_FIRST_COMPLETED),
            timeout=CALL_DEADLINE_SECONDS)
        self.assertEqual([r.index for r in response.done], [2])
        self.assert_result(response.done[0], pb.OUTCOME_OK, 200)
        self.assertEqual(list(response.pending_indices), [0, 1, 3])
        self.assert_summary(response.summary, pb.END_REASON_FIRST_COMPLETED,
                            total=4, succeeded=1, failed=0, pending=[0, 1, 3])

    def assert_invalid_argument(self, request, message_prefix, field):
        calls = {
            "ProbeBatch": lambda: self.stub.ProbeBatch(
                request, timeout=CALL_DEADLINE_SECONDS),
            "StreamProbes": lambda: self.stream(request),
        }
        for rpc, call in calls.items():
            with self.subTest(rpc=rpc):
                with self.assertRaises(grpc.RpcError) as raised:
                    call()
                self.assertEqual(raised.exception.code(),
                                 grpc.StatusCode.INVALID_ARGUMENT,
                                 raised.exception.details())
                self.assertTrue(
                    raised.exception.details().startswith(message_prefix),
                    raised.exception.details())
                # The same, machine-readable, where every gRPC library puts
                # it: a google.rpc.Status whose detail is a FieldViolation.
                trailers = dict(raised.exception.trailing_metadata())
                violation = field_violation(
                    trailers["grpc-status-details-bin"],
                    raised.exception.details())
                self.assertEqual(violation.field, field)
                self.assertEqual(
                    "%s: %s" % (violation.field, violation.description),
                    raised.exception.details())

    def test_invalid_argument_names_the_field(self):
        self.assert_invalid_argument(
            pb.ProbeBatchRequest(targets=[
                pb.ProbeTarget(url=self.url("/status/200")),
                pb.ProbeTarget(url=self.url("/status/200"),
                               options=pb.ProbeOptions(timeout=seconds(-1)))]),
            "targets[1].options.timeout: must not be negative",
            "targets[1].options.timeout")
        self.assert_invalid_argument(pb.ProbeBatchRequest(),
                                     "targets: at least one target", "targets")
        self.assert_invalid_argument(
            pb.ProbeBatchRequest(targets=[pb.ProbeTarget(
                url=self.url("/status/200"),
                options=pb.ProbeOptions(headers=pb.Headers(headers=[
                    pb.Header(name="X-Ok", value="1"),
                    pb.Header(name="X-Bad", value="a\r\nb")])))]),
            "targets[0].options.headers.headers[1].value:",
            "targets[0].options.headers.headers[1].value")

    def rewrite(self, text):
        """README text with its server and demo target made this run's."""
        return (text.replace(README_GRPC, self.grpc_address)
                .replace("http://" + README_DEMO, self.target))

    def run_recipe(self, setup, client_name, client, run):
        """Runs a README recipe as written in a scratch directory: `setup`
        (less its installs) generates the stubs, `client` is written to
        `client_name`, and `run` is run.  Returns what `run` printed."""
        work = pathlib.Path(tempfile.mkdtemp(prefix="interop_recipe."))
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        (work / "proto").symlink_to(REPO / "proto")
        # `python3` is Debian's, where python3-grpcio is.
        env = {**os.environ,
               "PATH": f"{pathlib.Path(sys.executable).parent}:"
                       f"{os.environ.get('PATH', '')}"}
        generated = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", without_installs(setup)],
            cwd=work, env=env, capture_output=True, text=True,
            timeout=CALL_DEADLINE_SECONDS)
        self.assertEqual(generated.returncode, 0, generated.stderr)
        (work / client_name).write_text(self.rewrite(client))
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.rewrite(run)], cwd=work,
            env=env, capture_output=True, text=True,
            timeout=CALL_DEADLINE_SECONDS)
        self.assertEqual(ran.returncode, 0, ran.stderr)
        return ran.stdout

    def test_readme_recipe_runs_as_written(self):
        blocks = readme_section_blocks("From Python")
        self.assertEqual([lang for lang, _ in blocks],
                         ["sh", "python", "sh", "text"])
        (_, setup), (_, client), (_, run), (_, output) = blocks
        printed = self.run_recipe(setup, "client.py", client, run)
        # Results come in completion order; the README's delays keep that
        # order stable, but which of two instant probes is first is not its
        # point.
        self.assertEqual(collections.Counter(printed.splitlines()),
                         collections.Counter(self.rewrite(output).splitlines()),
                         printed)

    def test_readme_probe_stream_recipe_runs_as_written(self):
        setup = readme_section_blocks("From Python")[0][1]
        blocks = readme_section_blocks("Any number of targets, from Python")
        self.assertEqual([lang for lang, _ in blocks],
                         ["python", "sh", "text"])
        (_, client), (_, run), (_, output) = blocks
        printed = self.run_recipe(setup, "stream_list.py", client, run)
        self.assertEqual(printed, self.rewrite(output))

if __name__ == "__main__":
    unittest.main(verbosity=2)
