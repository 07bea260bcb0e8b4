"""Runs the README's examples, taken from README.md itself, and checks them.

Which fenced blocks are examples:
- every ```console block: a transcript.  Each `$ ` line is a command (a
  trailing backslash continues it on the next line); the lines up to the
  next `$ ` are what it prints, stdout and stderr together.
- a ```sh block right after a `<!-- readme-test -->` line: commands with no
  output shown.
Every command must exit 0, except that a console command followed by
`$ echo $?` must exit as that shows, and an sh command whose trailing
comment says `exit N` must exit N.

Every command runs in one bash session, in the README's order (so a
variable set in one block holds in the next), in a scratch directory
holding `build` (this build's binaries) and a copy of `examples/`, against a
fanprobe-server and a fanprobe-demo-target this test starts on free ports.
Only addresses are rewritten: the demo target's 127.0.0.1:8081, the HTTP
side's 127.0.0.1:9116 and the gRPC port (`build/fanprobe probe` and
`health` get a `--server=`), in commands, in the examples' files and in the
output the README shows.

What is compared: each command's output lines with the README's, ignoring
spacing, durations (`307.7ms`) and the values of metrics in seconds, as a
multiset: rows come in completion order, and which of two close probes
completes first is the engine tests' business, not the README's.  The
README's examples keep their delays far apart so that what completes first
does not depend on the machine's load.

Blocks that are not run but probe the demo target (grpcurl is not in
Debian) are marked `<!-- readme-test-skip: REASON -->`; any other block
that names the demo target fails this test, so an example cannot be added
untested.  Every `-d '{...}'` request in any block must be valid JSON.

Run by ctest (tests/readme/CMakeLists.txt):
  FANPROBE_REPO=. FANPROBE_BUILD_DIR=build python3 tests/readme/readme_test.py
"""

import collections
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

REPO = pathlib.Path(
    os.environ.get("FANPROBE_REPO", pathlib.Path(__file__).resolve().parents[2]))
BUILD_DIR = pathlib.Path(os.environ.get("FANPROBE_BUILD_DIR", REPO / "build"))

README_DEMO = "127.0.0.1:8081"
README_HTTP = "127.0.0.1:9116"
README_GRPC = "127.0.0.1:50051"
RUN_MARKER = "<!-- readme-test -->"
SKIP_MARKER = re.compile(r"<!-- readme-test-skip: (.+) -->")
# Names the demo target: its address, or $T, the README's name for it.
USES_DEMO = re.compile(re.escape(README_DEMO) + r"|\$T\b|\$\{T\}")

# The whole run: starting both processes and every example.
RUN_TIMEOUT_SECONDS = 120
START_TIMEOUT_SECONDS = 60


class Block:
    def __init__(self, lang, lines, line_number, marker):
        self.lang = lang
        self.lines = lines
        self.line_number = line_number  # of the opening fence, from 1
        self.marker = marker  # "run", "skip" or None

    def text(self):
        return "\n".join(self.lines)


def read_blocks(readme_text):
    """Every fenced block, with the marker on the line before its fence."""
    blocks = []
    lines = readme_text.split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1)
                         if lines[j].strip()), "")
        marker = None
        if previous == RUN_MARKER:
            marker = "run"
        elif SKIP_MARKER.fullmatch(previous):
            marker = "skip"
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        blocks.append(Block(fence.group(1), lines[i + 1:end], i + 1, marker))
        i = end + 1
    return blocks


class Command:
    def __init__(self, text, line_number):
        self.text = text  # continuation lines joined with "\n"
        self.line_number = line_number
        self.expected_output = None  # lines, for console commands
        self.expected_exit = 0

    def __repr__(self):
        return f"README.md:{self.line_number}: {self.text}"


def console_commands(block):
    commands = []
    i = 0
    lines = block.lines
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise AssertionError(
                f"README.md:{block.line_number + 1 + i}: console output "
                f"before any command: {lines[i]!r}")
        start = i
        text = [lines[i][2:]]
        while text[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        command = Command("\n".join(text), block.line_number + 1 + start)
        command.expected_output = output
        commands.append(command)
    # `$ echo $?` shows the exit status of the command before it.
    for before, after in zip(commands, commands[1:]):
        if after.text.strip() == "echo $?":
            before.expected_exit = None
    return commands


def sh_commands(block):
    commands = []
    i = 0
    lines = block.lines
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        start = i
        text = [lines[i]]
        while text[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        i += 1
        command = Command("\n".join(text), block.line_number + 1 + start)
        exit_code = re.search(r"#.*\bexit (\d+)\b", text[-1])
        if exit_code:
            command.expected_exit = int(exit_code.group(1))
        commands.append(command)
    return commands


def runnable_commands(blocks):
    commands = []
    for block in blocks:
        if block.lang == "console":
            commands.extend(console_commands(block))
        elif block.marker == "run":
            commands.extend(sh_commands(block))
    return commands


def json_requests(blocks):
    """(line, text) of every `-d '...'` argument in a fenced block."""
    requests = []
    for block in blocks:
        if "-d '" not in block.text():
            continue
        # Quoted arguments span lines; shlex reads the block as one line.
        words = shlex.split(block.text().replace("\\\n", " "), comments=True)
        for flag, value in zip(words, words[1:]):
            if flag == "-d":
                requests.append((block.line_number, value))
    return requests


_DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)\b")
_METRIC = re.compile(r"^(\w*seconds\w*)(\{[^}]*\})? \S+$")


def normalize(line):
    """A line as compared: spacing, durations and timings left out."""
    line = " ".join(line.split())
    metric = _METRIC.match(line)
    if metric:
        return f"{metric.group(1)}{metric.group(2) or ''} <seconds>"
    return _DURATION.sub("<duration>", line)


class Started:
    """A child process whose output goes to a file, read for its address."""

    def __init__(self, argv, log_path, address_pattern):
        self.log_path = log_path
        self.log = open(log_path, "w+b")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        self.match = None
        while time.monotonic() < deadline and self.process.poll() is None:
            self.match = re.search(address_pattern, self.output())
            if self.match:
                return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{argv[0]} did not start:\n{self.output()}")

    def output(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def stop(self):
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.log.close()
        return code


class ReadmeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.readme = (REPO / "README.md").read_text(encoding="utf-8")
        cls.blocks = read_blocks(cls.readme)

    def test_examples_run_as_shown(self):
        commands = runnable_commands(self.blocks)
        # The first batch, the return-when rules, the /probe answers and the
        # other ways to run the CLI: if these vanish, so has the quick start.
        self.assertGreaterEqual(len(commands), 10, commands)
        for tool in ("bash", "curl"):
            self.assertTrue(shutil.which(tool), f"{tool} is not installed")

        scratch = pathlib.Path(tempfile.mkdtemp(prefix="readme_test."))
        self.addCleanup(shutil.rmtree, scratch, ignore_errors=True)
        demo = Started(
            [str(BUILD_DIR / "fanprobe-demo-target"), "--address=127.0.0.1:0"],
            scratch / "demo.log", r"listening on http://(127\.0\.0\.1:\d+)/")
        demo_address = demo.match.group(1)
        self.addCleanup(demo.stop)
        server = Started(
            [str(BUILD_DIR / "fanprobe-server"), "--grpc_address=127.0.0.1:0",
             "--http_address=127.0.0.1:0"],
            scratch / "server.log",
            r'"event":"listening","address":"([^"]+)",'
            r'"http_address":"([^"]+)"')
        grpc_address, http_address = server.match.groups()
        self.addCleanup(server.stop)

        def rewrite(text):
            return (text.replace(README_DEMO, demo_address)
                    .replace(README_HTTP, http_address)
                    .replace(README_GRPC, grpc_address))

        workdir = scratch / "work"
        workdir.mkdir()
        (workdir / "build").symlink_to(BUILD_DIR.resolve())
        for source in (REPO / "examples").rglob("*"):
            if source.is_file() and source.suffix in (".txt",):
                target = workdir / source.relative_to(REPO)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(rewrite(source.read_text(encoding="utf-8")))

        # One bash session; after each command a marker line with its exit
        # status, which `( exit N )` then restores for a following `echo $?`.
        script = ["set +e"]
        for n, command in enumerate(commands):
            text = rewrite(command.text)
            if "--server" not in text:
                text = re.sub(r"\bbuild/fanprobe (probe|health)\b",
                              rf"build/fanprobe \1 --server={grpc_address}",
                              text)
            script.append(f"{{\n{text}\n}} 2>&1 </dev/null")
            script.append(f"__rc=$?; printf '\\n@@readme-test {n} %d@@\\n' "
                          f"$__rc; ( exit $__rc )")
        run = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
            cwd=workdir, capture_output=True, timeout=RUN_TIMEOUT_SECONDS,
            env={**os.environ, "LC_ALL": "C.UTF-8"})
        transcript = run.stdout.decode(errors="replace")

        outputs = {}
        exits = {}
        pending = []
        for line in transcript.split("\n"):
            marker = re.fullmatch(r"@@readme-test (\d+) (\d+)@@", line)
            if marker:
                n = int(marker.group(1))
                if pending and pending[-1] == "":
                    pending.pop()  # the marker's own leading newline
                outputs[n] = pending
                exits[n] = int(marker.group(2))
                pending = []
            else:
                pending.append(line)
        self.assertEqual(len(exits), len(commands),
                         f"the examples did not all run:\n{transcript}\n"
                         f"{run.stderr.decode(errors='replace')}")

        for n, command in enumerate(commands):
            with self.subTest(command=repr(command)):
                got = outputs[n]
                if command.expected_exit is not None:
                    self.assertEqual(exits[n], command.expected_exit,
                                     "exit status; it printed:\n" +
                                     "\n".join(got))
                if command.expected_output is None:
                    continue
                want = [normalize(rewrite(line))
                        for line in command.expected_output]
                have = [normalize(line) for line in got]
                self.assertEqual(
                    collections.Counter(have), collections.Counter(want),
                    "\nthe README shows:\n" +
                    "\n".join(command.expected_output) +
                    "\nit printed:\n" + "\n".join(got))

        self.assertEqual(demo.stop(), 0, demo.output())
        self.assertEqual(server.stop(), 0, server.output())

    def test_every_block_naming_the_demo_target_is_run_or_says_why(self):
        for block in self.blocks:
            if block.lang == "console" or block.marker:
                continue
            self.assertIsNone(
                USES_DEMO.search(block.text()),
                f"README.md:{block.line_number}: a ```{block.lang} block "
                f"probes the demo target but is not run: put {RUN_MARKER} "
                "before it, or <!-- readme-test-skip: why -->")

    def test_run_blocks_are_shell(self):
        for block in self.blocks:
            if block.marker == "run":
                self.assertEqual(block.lang, "sh",
                                 f"README.md:{block.line_number}")

    def test_requests_are_valid_json(self):
        requests = json_requests(self.blocks)
        self.assertTrue(requests, "the grpcurl examples send no request")
        for line, text in requests:
            with self.subTest(line=line):
                json.loads(text)

    def test_examples_probe_only_loopback(self):
        # On a fresh machine with no network, every example must work.
        for block in self.blocks:
            if block.lang != "console" and not block.marker:
                continue
            for host in re.findall(r"https?://([^/:\s'\"]+)", block.text()):
                with self.subTest(line=block.line_number, host=host):
                    self.assertRegex(host, r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
