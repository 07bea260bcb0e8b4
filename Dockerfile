# fanprobe-server (and the fanprobe CLI, for the HEALTHCHECK) in a small
# Debian image.
#
#   make image        # podman, with local base images; see deploy/README.md
#   make image-test   # builds it, runs it, sends a batch, drains it
#
# With Docker and a registry, `docker build -t fanprobe .` works unchanged.
# With podman, build with `--format docker`: the OCI image format has no
# HEALTHCHECK or SHELL, and podman drops them otherwise.
#
# Two stages: `build` compiles with Debian's -dev packages; the final stage is
# bookworm-slim plus exactly the runtime packages that own the shared
# libraries the two binaries load (worked out in `build`, so this file never
# lists library package names that change with their SONAME).

ARG DEBIAN_IMAGE=debian:bookworm
ARG DEBIAN_SLIM_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# What the server and CLI need to compile: the Makefile's BUILD_PACKAGES
# without the test, benchmark and formatting ones.
ARG BUILD_PACKAGES="g++ make cmake pkg-config libcurl4-openssl-dev \
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto \
  libabsl-dev libre2-dev libcpp-httplib-dev libmicrohttpd-dev libgnutls28-dev libyaml-cpp-dev libcli11-dev"
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ${BUILD_PACKAGES} \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps tests, docs, deploy/ and build trees out of this copy.
COPY . .
ARG JOBS=2
ARG BUILD_TYPE=RelWithDebInfo
# Then the Debian packages owning every shared library the binaries load.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DBUILD_TESTING=OFF \
 && cmake --build /build -j${JOBS} --target fanprobe-server fanprobe \
 && mkdir -p /out/bin \
 && strip --strip-unneeded -o /out/bin/fanprobe-server /build/fanprobe-server \
 && strip --strip-unneeded -o /out/bin/fanprobe /build/fanprobe \
 && ldd /out/bin/fanprobe-server /out/bin/fanprobe \
    | awk '$2 == "=>" && $3 ~ /^\// { n = split($3, p, "/"); print "*/" p[n] }' \
    | sort -u | xargs -d '\n' dpkg -S \
    | sed -e 's/: .*//' -e 's/, /\n/g' | sed -e 's/:.*//' | sort -u \
    > /out/runtime-packages \
 && echo "runtime packages:" $(cat /out/runtime-packages)

FROM ${DEBIAN_SLIM_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# ca-certificates: probes of https:// targets verify against the system CAs.
# The user has a fixed numeric uid, so Kubernetes' runAsNonRoot can check it.
RUN apt-get update -qq \
 && xargs -a /tmp/runtime-packages \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /tmp/runtime-packages \
 && groupadd --gid 65532 -K GID_MAX=65532 fanprobe \
 && useradd --uid 65532 --gid 65532 -K UID_MAX=65532 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin fanprobe
COPY --from=build /out/bin/ /usr/local/bin/

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="fanprobe" \
      org.opencontainers.image.description="gRPC service fanning out HTTP probes (fanprobe-server + fanprobe CLI)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="debian:bookworm-slim" \
      org.opencontainers.image.documentation="deploy/README.md"

USER 65532:65532
# 50051: gRPC (Prober, health, reflection).  9116: HTTP (--http_address):
# /metrics, /probe, /healthz, /readyz.
EXPOSE 50051 9116
# The server is PID 1 and handles SIGTERM itself (sigwait on a blocked
# signal, which the kernel delivers even to PID 1): it turns NOT_SERVING,
# drains running batches for --shutdown_grace (10s) and exits 0.  Give the
# runtime a longer stop timeout than that (docker/podman --stop-timeout 15,
# Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/fanprobe", "health", "--server=127.0.0.1:50051", "--timeout=2s"]
ENTRYPOINT ["/usr/local/bin/fanprobe-server"]
CMD ["--grpc_address=0.0.0.0:50051", "--http_address=0.0.0.0:9116"]
