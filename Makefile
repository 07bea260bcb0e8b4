# fanprobe's entry points.  The README's quick start is `make run` and
# `make test`; both install the Debian packages that are missing first.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
GRPC_ADDRESS ?= 127.0.0.1:50051

# Everything a build and the test suite need, by Debian 12 package name.
BUILD_PACKAGES := g++ make cmake pkg-config clang-format \
  libcurl4-openssl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler \
  protobuf-compiler-grpc libabsl-dev libre2-dev libcpp-httplib-dev \
  libgtest-dev libgmock-dev libbenchmark-dev python3-yaml grpc-proto \
  libyaml-cpp-dev prometheus prometheus-blackbox-exporter
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build test run format format-check clean

# Installs only what is missing, so a machine that has everything makes no
# network call at all.
deps:
	@missing=$$(for p in $(BUILD_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 300

run: build
	@echo "fanprobe-server on $(GRPC_ADDRESS). In another shell, send a first batch:"
	@echo "  $(BUILD_DIR)/fanprobe probe --server=$(GRPC_ADDRESS) https://example.com http://127.0.0.1:1"
	$(BUILD_DIR)/fanprobe-server --grpc_address=$(GRPC_ADDRESS)

format:
	git ls-files '*.cc' '*.h' | xargs -r clang-format -i

format-check:
	git ls-files '*.cc' '*.h' | xargs -r clang-format --dry-run --Werror

clean:
	rm -rf $(BUILD_DIR)

# --- Benchmarks (bench/, issue 4) --------------------------------------------
# `make bench` runs fanprobe and its peers side by side against a loopback
# nginx and writes bench/results/{results.md,chart.png}; see bench/README.md.
BENCH_PACKAGES := nginx libnginx-mod-http-echo python3-aiohttp wrk \
  prometheus-blackbox-exporter curl python3-matplotlib
BENCH_REPEATS ?= 3

.PHONY: bench-deps bench

bench-deps:
	@missing=$$(for p in $(BENCH_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Debian's python3, where python3-aiohttp and python3-matplotlib live.
bench: bench-deps build
	/usr/bin/python3 bench/run_bench.py --build-dir $(BUILD_DIR) --repeats $(BENCH_REPEATS)

# --- Container image (deploy/, issue 7) --------------------------------------
# podman with runc and local debootstrap'ed Debian base images (no registry
# needed); installs podman runc debootstrap if missing.  Not part of CI: an
# image build compiles the whole project (see deploy/README.md).
.PHONY: image image-test

image:
	JOBS=$(JOBS) deploy/container/build-image.sh

image-test:
	JOBS=$(JOBS) deploy/container/image-test.sh
