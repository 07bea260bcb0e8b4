#!/usr/bin/env bash
# `make image-test`: the image works the way a deployment uses it.
#
#   1. builds $FANPROBE_IMAGE (build-image.sh; FANPROBE_SKIP_BUILD=1 skips),
#   2. runs it with --network=host on a free port, hardened the way
#      deploy/kubernetes runs it (read-only root, no capabilities, no new
#      privileges, the image's non-root user),
#   3. sends a real batch with the image's own CLI (from a second container)
#      against a loopback HTTP target (Python's http.server module),
#   4. checks health twice: `fanprobe health` from outside, and the image's
#      HEALTHCHECK command run by `podman healthcheck run`,
#   5. starts a batch that cannot finish (a listener that never answers),
#      sends SIGTERM, and checks the container drains and exits 0 within
#      --shutdown_grace plus a small margin, the batch ending UNAVAILABLE.
#
# Prints one "ok:" line per check and "image-test: PASS" at the end; exits
# non-zero at the first failed check.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${FANPROBE_SKIP_BUILD:-0}" != 1 ]; then "$here/build-image.sh"; fi
# shellcheck source=lib.sh
. "$here/lib.sh"
fp_podman_setup
podman image exists "$FANPROBE_IMAGE" || fp_die "no image $FANPROBE_IMAGE; run make image"

grace_s=5
# Start-up, client and exit-code round trips on top of the grace period.
margin_s=5
targets=100

work=$(mktemp -d /tmp/fanprobe-image-test.XXXXXX)
ctr="fanprobe-image-test-$$"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  podman rm -f -t 0 "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- container log" >&2
  podman logs "$ctr" >&2 2>&1 || true
  exit 1
}

# The image's CLI, as a client in its own container on the host network.
cli() {
  podman run --rm --network=host --read-only --cap-drop=ALL --no-healthcheck \
    --entrypoint /usr/local/bin/fanprobe "$FANPROBE_IMAGE" "$@"
}

# Loopback targets: an HTTP server answering 200 to every GET (a bigger
# listen backlog than http.server's 5, which drops SYNs of a concurrent
# batch), and a listener that never answers.
http_port=$(fp_free_port)
/usr/bin/python3 -c 'import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
Server(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
' "$http_port" &
pids+=($!)
silent_port=$(fp_free_port)
/usr/bin/python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
conns = []
while True:
    conns.append(s.accept()[0])  # accept, never answer
' "$silent_port" &
pids+=($!)

for p in "$http_port" "$silent_port"; do
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then break; fi
    sleep 0.1
  done
done

port=$(fp_free_port)
podman run -d --name "$ctr" --network=host \
  --read-only --cap-drop=ALL --security-opt=no-new-privileges \
  --health-cmd "[\"/usr/local/bin/fanprobe\", \"health\", \"--server=127.0.0.1:$port\", \"--timeout=2s\"]" \
  --health-interval=disable \
  "$FANPROBE_IMAGE" --grpc_address="0.0.0.0:$port" --shutdown_grace="${grace_s}s" >/dev/null
echo "ok: started $FANPROBE_IMAGE as $ctr on 0.0.0.0:$port ($(podman image inspect \
  --format '{{.Size}}' "$FANPROBE_IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"

for _ in $(seq 1 50); do
  if cli health --server="127.0.0.1:$port" --timeout=1s >/dev/null 2>&1; then break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$ctr")" = true ] ||
    fail "the container exited during start-up"
  sleep 0.2
done
cli health --server="127.0.0.1:$port" >"$work/health.out" 2>&1 ||
  fail "fanprobe health: $(cat "$work/health.out")"
echo "ok: fanprobe health: $(tr -s '\n' ' ' <"$work/health.out")"
user=$(podman exec "$ctr" id -u)
[ "$user" = 65532 ] || fail "server runs as uid $user, want 65532"
echo "ok: server runs as uid $user on a read-only root"

# The HEALTHCHECK the image carries, run with this test's port.
podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$FANPROBE_IMAGE" |
  grep -q 'fanprobe","health' || fail "the image has no fanprobe health HEALTHCHECK"
podman healthcheck run "$ctr" >"$work/hc.out" 2>&1 ||
  fail "podman healthcheck run: $(cat "$work/hc.out")"
echo "ok: podman healthcheck run (the image's HEALTHCHECK command, this port): healthy $(tr -s '\n' ' ' <"$work/hc.out")"

urls=()
for i in $(seq 1 "$targets"); do urls+=("http://127.0.0.1:$http_port/ok.txt?i=$i"); done
cli probe --server="127.0.0.1:$port" --timeout=30s "${urls[@]}" >"$work/batch.out" 2>&1 ||
  { cat "$work/batch.out" >&2; fail "the batch did not succeed"; }
summary=$(grep -E "[0-9]+ probes, " "$work/batch.out" || true)
echo "$summary" | grep -q "$targets probes, $targets completed ($targets ok, 0 failed)" ||
  { cat "$work/batch.out" >&2; fail "unexpected summary: $summary"; }
echo "ok: batch of $targets: $summary"

# A batch still running when SIGTERM arrives: drained for the grace period,
# then ended with UNAVAILABLE, and the server exits 0.
cli probe --server="127.0.0.1:$port" --probe_timeout=60s \
  "http://127.0.0.1:$silent_port/never" >"$work/drain.out" 2>&1 &
drain_client=$!
pids+=("$drain_client")
sleep 1
start_ns=$(date +%s%N)
podman kill --signal TERM "$ctr" >/dev/null
if ! timeout $((grace_s + margin_s)) podman wait "$ctr" >/dev/null 2>&1; then
  fail "still running $((grace_s + margin_s))s after SIGTERM (grace ${grace_s}s)"
fi
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
code=$(podman inspect --format '{{.State.ExitCode}}' "$ctr")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM, want 0"
client_code=0
wait "$drain_client" || client_code=$?
grep -q UNAVAILABLE "$work/drain.out" ||
  { cat "$work/drain.out" >&2; fail "the in-flight batch did not end UNAVAILABLE"; }
printf 'ok: SIGTERM -> exit 0 in %d.%ds (grace %ss); in-flight batch: %s (cli exit %s)\n' \
  $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$grace_s" "$(grep -o 'UNAVAILABLE.*' "$work/drain.out" | head -n1)" "$client_code"
podman logs "$ctr" 2>&1 | grep -q '"event":"stopped"' || fail "no stopped log line"
echo "--- container log"
podman logs "$ctr" 2>&1 | grep -v '"event":"batch"' | sed 's/^/  /'
echo "image-test: PASS"
