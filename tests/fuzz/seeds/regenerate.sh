#!/usr/bin/env bash
# Regenerates the binary seed corpus of batch_request_fuzzer from the
# readable seeds here: each <name>.textproto becomes
# ../corpus/batch_request/<name> (a serialized ProbeBatchRequest).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
out="$here/../corpus/batch_request"
mkdir -p "$out"
for seed in "$here"/*.textproto; do
  protoc --proto_path="$root/proto" --encode=fanprobe.v1.ProbeBatchRequest \
    fanprobe/v1/prober.proto < "$seed" > "$out/$(basename "$seed" .textproto)"
done
