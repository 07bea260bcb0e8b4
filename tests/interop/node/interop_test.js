// fanprobe.v1.Prober from Node: @grpc/grpc-js and @grpc/proto-loader (from
// npm, pinned by this folder's package-lock.json, installed by `make
// interop-deps`) against a real fanprobe-server process on a free loopback
// port, probing fanprobe-demo-target, also on loopback.  The client loads
// proto/fanprobe/v1/prober.proto at run time, as the README's Node recipe
// does, so it checks that protobufjs reads the contract (proto3 `optional`
// included) and that the server's messages decode: a stream with each
// result then the summary, the return-when rules, the pending indices and
// the summary of both RPCs, and INVALID_ARGUMENT with the field path.  It
// also runs the README's Node recipe (client.js) as written and compares
// its output with the README's.
//
// Both processes are killed when the test ends, however it ends: stopped
// with SIGTERM by the `after` hook, SIGKILLed on the way out of a process
// that fails otherwise, and started under `setpriv --pdeathsig KILL` so that
// a test killed outright (ctest's timeout) takes them with it.
//
// Run by ctest (tests/interop/CMakeLists.txt), with node's own test runner:
//   FANPROBE_SERVER=build/fanprobe-server \
//   FANPROBE_DEMO_TARGET=build/fanprobe-demo-target \
//     node tests/interop/node/interop_test.js

'use strict';

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const {promisify} = require('node:util');
const {after, before, describe, it} = require('node:test');

let grpc;
let protoLoader;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
} catch (error) {
  console.error(
      `${error.message}\nThe Node interop test's packages are missing: ` +
      '`make interop-deps` installs them (npm ci in tests/interop/node).');
  process.exit(1);
}

const REPO = path.resolve(__dirname, '..', '..', '..');
const PROTO_DIR = path.join(REPO, 'proto');
const START_TIMEOUT_MS = 30000;
// Every call's deadline: far beyond any batch here (the longest ends at its
// 2 s timeout), so a hung server fails the test instead of hanging it.
const CALL_DEADLINE_MS = 30000;
// Far longer than any batch here runs: a probe of it completes only if the
// batch failed to end when its rule said so.
const SLOW = '/delay/30';

// The addresses README.md's recipes use, rewritten to this test's.
const README_GRPC = '127.0.0.1:50051';
const README_DEMO = 'http://127.0.0.1:8081';

// The fenced blocks under README.md's `### title`: [{lang, text}].
function readmeSectionBlocks(title) {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n### ${title}\n`);
  assert.notEqual(start, -1, `README.md has no section ### ${title}`);
  const end = readme.indexOf('\n##', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(
      (m) => ({lang: m[1], text: m[2]}));
}

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

// Starts argv under setpriv and resolves with the first match of `pattern`
// in its output (stdout and stderr together).
function start(argv, pattern) {
  return new Promise((resolve, reject) => {
    const child = childProcess.spawn(
        'setpriv', ['--pdeathsig', 'KILL', '--', ...argv],
        {stdio: ['ignore', 'pipe', 'pipe']});
    children.add(child);
    let output = '';
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`${argv[0]} ${why}:\n${output}`));
    };
    const timer = setTimeout(() => fail('did not start'), START_TIMEOUT_MS);
    const read = (chunk) => {
      output += chunk;
      const match = output.match(pattern);
      if (match && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve({child, match});
      }
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', read);
    child.on('error', (error) => fail(`could not run: ${error.message}`));
    child.on('exit', (code, signal) => {
      children.delete(child);
      clearTimeout(timer);
      fail(`exited (${code ?? signal})`);
    });
  });
}

// SIGTERM, then the exit code.
function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.exitCode);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

function deadline() {
  return new Date(Date.now() + CALL_DEADLINE_MS);
}

function durationNanos(duration) {
  return BigInt(duration.seconds) * 1000000000n + BigInt(duration.nanos);
}

describe('fanprobe.v1.Prober from @grpc/grpc-js', () => {
  let client;
  let demo;
  let server;
  let target;
  let grpcAddress;
  let refusedUrl;

  before(async () => {
    const definition = protoLoader.loadSync('fanprobe/v1/prober.proto', {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const fanprobe = grpc.loadPackageDefinition(definition).fanprobe.v1;
    demo = await start(
        [process.env.FANPROBE_DEMO_TARGET, '--address=127.0.0.1:0'],
        /listening on (http:\/\/127\.0\.0\.1:\d+)\//);
    target = demo.match[1];
    server = await start(
        [
          process.env.FANPROBE_SERVER, '--grpc_address=127.0.0.1:0',
          '--http_address=',
        ],
        /"event":"listening","address":"([^"]+)"/);
    grpcAddress = server.match[1];
    client = new fanprobe.Prober(grpcAddress, grpc.credentials.createInsecure());
    // A port that refuses connections: one the kernel just handed out and
    // took back (node cannot hold a port without listening on it).
    const refusing = net.createServer();
    await new Promise((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    refusedUrl = `http://127.0.0.1:${refusing.address().port}/`;
    await new Promise((resolve) => refusing.close(resolve));
  });

  after(async () => {
    if (client) client.close();
    const codes = await Promise.all(
        [server, demo].filter(Boolean).map(({child}) => stop(child)));
    assert.deepEqual(codes, codes.map(() => 0), 'exit codes');
  });

  const url = (p) => target + p;

  // A protobuf message's fields by number, read off the wire: varints as
  // numbers, length-delimited fields as Buffers (Debian and npm's
  // grpc-js ship no google.rpc.Status to decode the error details with).
  function wireFields(buffer) {
    const fields = new Map();
    let at = 0;
    const varint = () => {
      let value = 0;
      let shift = 0;
      for (;;) {
        const byte = buffer[at++];
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if (byte < 0x80) return value;
      }
    };
    while (at < buffer.length) {
      const tag = varint();
      let value;
      if ((tag & 7) === 0) {
        value = varint();
      } else if ((tag & 7) === 2) {
        const length = varint();
        value = buffer.subarray(at, at + length);
        at += length;
      } else {
        throw new Error(`wire type ${tag & 7}`);
      }
      const number = Math.floor(tag / 8);
      fields.set(number, [...(fields.get(number) ?? []), value]);
    }
    return fields;
  }

  // The results of a StreamProbes call in arrival order, and its summary;
  // asserts the stream's shape (results, then exactly one summary, last).
  // Results sent together (max_results_per_event) are unpacked in order,
  // and each event's count kept in groupSizes.
  function stream(request) {
    return readEvents(
        client.StreamProbes(request, {deadline: deadline()}),
        request.max_results_per_event);
  }

  // A ProbeStream call: `messages` written in order, then the end of the
  // request stream.
  function probeStream(messages) {
    const call = client.ProbeStream({deadline: deadline()});
    const events = readEvents(call, messages[0].batch.max_results_per_event);
    for (const message of messages) call.write(message);
    call.end();
    return events;
  }

  // The events of a StreamProbes or ProbeStream call, checked for shape:
  // results (grouped only if `maxPerEvent` asks), then one summary.
  function readEvents(call, maxPerEvent) {
    return new Promise((resolve, reject) => {
      const results = [];
      const groupSizes = [];
      let summary = null;
      call.on('data', (event) => {
        try {
          assert.equal(summary, null, 'an event after the summary');
          if (event.event === 'result') {
            results.push(event.result);
          } else if (event.event === 'results') {
            assert.ok(maxPerEvent > 1, 'unasked results');
            groupSizes.push(event.results.results.length);
            results.push(...event.results.results);
          } else {
            assert.equal(event.event, 'summary', JSON.stringify(event));
            summary = event.summary;
          }
        } catch (error) {
          call.cancel();
          reject(error);
        }
      });
      call.on('error', reject);
      call.on('end', () => {
        if (summary === null) {
          reject(new Error('the stream ended without a summary'));
        } else {
          resolve({results, summary, groupSizes});
        }
      });
    });
  }

  function probeBatch(request) {
    return new Promise((resolve, reject) => {
      client.ProbeBatch(
          request, {deadline: deadline()},
          (error, response) => error ? reject(error) : resolve(response));
    });
  }

  function assertSummary(summary, reason, total, succeeded, failed, pending) {
    assert.deepEqual(
        {
          reason: summary.reason,
          total: summary.total,
          completed: summary.completed,
          succeeded: summary.succeeded,
          failed: summary.failed,
          cancelled: summary.cancelled,
          pending_indices: summary.pending_indices,
        },
        {
          reason,
          total,
          completed: succeeded + failed,
          succeeded,
          failed,
          cancelled: pending.length,
          pending_indices: pending,
        });
  }

  function assertResult(result, outcome, statusCode) {
    assert.deepEqual(
        [result.outcome, result.status_code], [outcome, statusCode],
        JSON.stringify(result));
  }

  it('streams each result as it completes, then the summary', async () => {
    const targets = [
      {url: url('/status/200'), id: 'ok', labels: {env: 'prod'}},
      {url: url('/status/503'), id: 'unavailable'},
      // Sent last by the target, so it arrives last: results stream as they
      // complete, not in request order.
      {url: url('/delay/2'), id: 'slow'},
      {url: refusedUrl, id: 'refused'},
      {url: 'ftp://127.0.0.1/', id: 'ftp'},
      // proto3 `optional` fields set by name, as protobufjs reads them.
      {url: url('/redirect/2'), id: 'redirects', options: {max_redirects: 1}},
      {
        url: url('/status/503'),
        id: '503-expected',
        options: {valid_status: {ranges: [{min: 500, max: 599}]}},
      },
    ];
    const {results, summary} = await stream({targets});

    assert.deepEqual(
        results.map((r) => r.index).sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(results.at(-1).id, 'slow');
    const byId = {};
    for (const result of results) {
      assert.equal(result.url, targets[result.index].url);
      assert.equal(result.id, targets[result.index].id);
      byId[result.id] = result;
    }
    assertResult(byId.ok, 'OUTCOME_OK', 200);
    assert.deepEqual(byId.ok.labels, {env: 'prod'});
    assert.equal(byId.ok.remote_ip, '127.0.0.1');
    // A uint64, as a string (longs: String).
    assert.equal(byId.ok.body_bytes, String('status 200\n'.length));
    assertResult(byId.unavailable, 'OUTCOME_UNEXPECTED_STATUS', 503);
    assertResult(byId.slow, 'OUTCOME_OK', 200);
    assert.ok(durationNanos(byId.slow.timings.total) >= 2000000000n);
    assertResult(byId.refused, 'OUTCOME_CONNECT_ERROR', 0);
    assertResult(byId.ftp, 'OUTCOME_INVALID_TARGET', 0);
    assertResult(byId.redirects, 'OUTCOME_TOO_MANY_REDIRECTS', 302);
    assert.equal(byId.redirects.hops.length, 2);
    assertResult(byId['503-expected'], 'OUTCOME_OK', 503);
    assertSummary(summary, 'END_REASON_ALL_COMPLETED', 7, 3, 4, []);
  });

  it('lists every attempt of a retried probe', async () => {
    const retried = {retry: {max_attempts: 3, initial_backoff: {nanos: 10e6}}};
    const {results, summary} = await stream({targets: [
      {url: refusedUrl, options: retried},
      {url: refusedUrl},
    ]});
    const byIndex = {};
    for (const result of results) byIndex[result.index] = result;
    const refused = byIndex[0];
    assertResult(refused, 'OUTCOME_CONNECT_ERROR', 0);
    assert.deepEqual(refused.attempts.map((a) => a.outcome),
                     Array(3).fill('OUTCOME_CONNECT_ERROR'));
    // Each began after the one before and at least 8 ms of backoff.
    const starts = refused.attempts.map((a) => durationNanos(a.start));
    assert.equal(starts[0], 0n);
    assert.ok(starts[1] >= 8000000n, String(starts));
    assert.ok(starts[2] > starts[1], String(starts));
    // Without a retry policy, no attempts are listed.
    assert.deepEqual(byIndex[1].attempts, []);
    assertSummary(summary, 'END_REASON_ALL_COMPLETED', 2, 0, 2, []);
  });

  it('unpacks results sent together, each once', async () => {
    const targets = Array.from({length: 300}, () => ({url: url('/status/200')}));
    const {results, summary, groupSizes} = await stream(
        {targets, max_concurrency: 50, max_results_per_event: 40});
    assert.deepEqual(
        results.map((r) => r.index).sort((a, b) => a - b),
        Array.from({length: 300}, (_, i) => i));
    assert.equal(groupSizes.reduce((a, b) => a + b, 0), 300);
    assert.ok(groupSizes.every((n) => n >= 1 && n <= 40), String(groupSizes));
    for (const result of results) assertResult(result, 'OUTCOME_OK', 200);
    assertSummary(summary, 'END_REASON_ALL_COMPLETED', 300, 300, 0, []);
  });

  it('feeds a ProbeStream message by message', async () => {
    const messages = [{batch: {max_concurrency: 20, max_results_per_event: 64}}];
    for (let chunk = 0; chunk < 4; chunk++) {
      messages.push({
        targets: Array.from(
            {length: 50},
            (_, i) => ({url: url('/status/200'), id: `${chunk}-${i}`})),
      });
    }
    messages.push({targets: [{url: 'ftp://127.0.0.1/', id: 'ftp'}]});
    const {results, summary, groupSizes} = await probeStream(messages);
    assert.deepEqual(
        results.map((r) => r.index).sort((a, b) => a - b),
        Array.from({length: 201}, (_, i) => i));
    assert.equal(groupSizes.reduce((a, b) => a + b, 0), 201);
    const byIndex = new Map(results.map((r) => [r.index, r]));
    // Indices run on across messages.
    assert.equal(byIndex.get(0).id, '0-0');
    assert.equal(byIndex.get(199).id, '3-49');
    assertResult(byIndex.get(120), 'OUTCOME_OK', 200);
    assertResult(byIndex.get(200), 'OUTCOME_INVALID_TARGET', 0);
    assertSummary(summary, 'END_REASON_ALL_COMPLETED', 201, 200, 1, []);
  });

  it('ends at the first completed probe, the rest pending', async () => {
    const {results, summary} = await stream({
      targets: [{url: url(SLOW)}, {url: url('/status/404')}, {url: url(SLOW)}],
      return_when: 'RETURN_WHEN_FIRST_COMPLETED',
    });
    assert.deepEqual(results.map((r) => r.index), [1]);
    assertResult(results[0], 'OUTCOME_UNEXPECTED_STATUS', 404);
    assertSummary(summary, 'END_REASON_FIRST_COMPLETED', 3, 0, 1, [0, 2]);
  });

  it('ends at the first exception, the rest pending', async () => {
    const {results, summary} = await stream({
      targets: [{url: url(SLOW)}, {url: url('/status/500')}, {url: url(SLOW)}],
      return_when: 'RETURN_WHEN_FIRST_EXCEPTION',
    });
    assert.deepEqual(results.map((r) => r.index), [1]);
    assertResult(results[0], 'OUTCOME_UNEXPECTED_STATUS', 500);
    assertSummary(summary, 'END_REASON_FIRST_EXCEPTION', 3, 0, 1, [0, 2]);
  });

  it('ends at the batch timeout, the rest pending', async () => {
    const {results, summary} = await stream({
      targets: [{url: url('/status/200')}, {url: url(SLOW)}, {url: url(SLOW)}],
      timeout: {seconds: 2, nanos: 0},
    });
    assert.deepEqual(results.map((r) => r.index), [0]);
    assertSummary(summary, 'END_REASON_TIMEOUT', 3, 1, 0, [1, 2]);
    assert.ok(durationNanos(summary.elapsed) >= 2000000000n);
  });

  it('answers ProbeBatch with done, pending and the summary', async () => {
    const response = await probeBatch({
      targets: [
        {url: url(SLOW)},
        {url: url('/delay/0.1'), id: 'first'},
        {url: url(SLOW)},
      ],
      return_when: 'RETURN_WHEN_FIRST_COMPLETED',
    });
    assert.deepEqual(
        response.done.map((r) => [r.index, r.id]), [[1, 'first']]);
    assertResult(response.done[0], 'OUTCOME_OK', 200);
    assert.deepEqual(response.pending_indices, [0, 2]);
    assertSummary(
        response.summary, 'END_REASON_FIRST_COMPLETED', 3, 1, 0, [0, 2]);
  });

  it('fails a bad request with INVALID_ARGUMENT naming the field',
     async () => {
       const request = {
         targets: [
           {url: url('/status/200')},
           {url: url('/status/200'), options: {timeout: {seconds: -1}}},
         ],
       };
       for (const call of [() => probeBatch(request), () => stream(request)]) {
         await assert.rejects(call(), (error) => {
           assert.equal(error.code, grpc.status.INVALID_ARGUMENT, error.details);
           assert.match(
               error.details,
               /^targets\[1\]\.options\.timeout: must not be negative/);
           // The same, machine-readable: a google.rpc.Status whose one
           // detail is an Any holding a fanprobe.v1.FieldViolation.
           const [details] = error.metadata.get('grpc-status-details-bin');
           const status = wireFields(details);
           assert.deepEqual(status.get(1), [grpc.status.INVALID_ARGUMENT]);
           assert.equal(status.get(2)[0].toString(), error.details);
           assert.equal(status.get(3).length, 1);
           const any = wireFields(status.get(3)[0]);
           assert.equal(any.get(1)[0].toString(),
                        'type.googleapis.com/fanprobe.v1.FieldViolation');
           const violation = wireFields(any.get(2)[0]);
           assert.equal(violation.get(1)[0].toString(),
                        'targets[1].options.timeout');
           assert.equal(`targets[1].options.timeout: ${
                            violation.get(2)[0].toString()}`,
                        error.details);
           return true;
         });
       }
     });

  it('runs the README recipe as written', async () => {
    const blocks = readmeSectionBlocks('From Node');
    assert.deepEqual(blocks.map((b) => b.lang), ['sh', 'js', 'sh', 'text']);
    const [install, clientJs, run, output] = blocks.map((b) => b.text);
    // What the recipe installs is what this folder's package.json pins; the
    // test installs nothing and uses those.
    assert.equal(install.trim(), 'npm install @grpc/grpc-js @grpc/proto-loader');
    const rewrite = (text) => text.replaceAll(README_GRPC, grpcAddress)
                                  .replaceAll(README_DEMO, target);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'interop_recipe.'));
    try {
      fs.symlinkSync(PROTO_DIR, path.join(work, 'proto'));
      fs.writeFileSync(path.join(work, 'client.js'), rewrite(clientJs));
      const {stdout} = await promisify(childProcess.execFile)(
          'bash', ['-euo', 'pipefail', '-c', run], {
            cwd: work,
            timeout: CALL_DEADLINE_MS,
            env: {
              ...process.env,
              NODE_PATH: path.join(__dirname, 'node_modules'),
              PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`,
            },
          });
      // Results come in completion order; as a multiset, the order of two
      // close probes is not the README's point.
      const lines = (text) => text.split('\n').filter((l) => l !== '').sort();
      assert.deepEqual(lines(stdout), lines(rewrite(output)));
    } finally {
      fs.rmSync(work, {recursive: true, force: true});
    }
  });
});
