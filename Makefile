# The two commands a newcomer needs:
#   make run    set up everything, then serve the shipped model against the local database
#   make test   set up everything, then run formatting, lint and all tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CACHE_DIR ?= $(or $(HALLMARK_CACHE),$(HOME)/.cache/hallmark)
VENV := $(CACHE_DIR)/venv
export PATH := $(VENV)/bin:$(CACHE_DIR)/cargo-tools/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export HALLMARK_PYTHON := $(VENV)/bin/python
export HALLMARK_NODE_MODULES := $(CACHE_DIR)/node/node_modules
# The database the tests create their per-test databases next to.
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/hallmark

.PHONY: setup tools build run test lint deny deny-advisories sbom bench fuzz device-bundle
setup:
	scripts/setup.sh

# cargo-deny and cargo-cyclonedx (built once into the cache folder): for lint, deny and sbom only.
tools: setup
	scripts/setup.sh --cargo-tools

build: setup
	cargo build --release

run: build
	./target/release/hallmark init
	./target/release/hallmark serve

lint: tools
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo deny --locked check licenses bans sources

# The dependency policy of deny.toml (licences, banned crates, sources), from Cargo.lock, offline;
# also part of `make lint`. The RustSec advisories need the network: `make deny-advisories`.
deny: tools
	cargo deny --locked check licenses bans sources

deny-advisories: tools
	cargo deny --locked check advisories

# A CycloneDX 1.5 SBOM of the hallmark binary's dependencies, with their licences and package
# URLs (cargo-cyclonedx, from Cargo.lock): target/sbom/hallmark_bin.cdx.json.
sbom: tools
	cargo cyclonedx --format json --spec-version 1.5 --describe binaries --quiet
	mkdir -p target/sbom
	mv hallmark_bin.cdx.json target/sbom/
	@echo "target/sbom/hallmark_bin.cdx.json"

test: lint
	cargo test
	# The Python peer of the throughput comparison still does the same work (4 s).
	python benches/python_peer/test_peer.py

bench: setup
	cargo bench

# Mutation fuzzing of the upload path (tests/fuzz.rs) with a large budget: FUZZ_ITERS inputs for
# the upload gate (decoding and hashing, ~75 ms an input), FUZZ_ITERS_CHEAP for the C2PA reader and
# the multipart parser (~7 and ~4 ms); they run side by side, about 9 minutes on the 2-core
# machine. FUZZ_SEED for another reproducible sequence. The test profile on purpose: dependencies
# are optimised (opt-level 2) yet keep overflow checks and debug assertions, which turn silent
# arithmetic bugs in the decoders into findings, and it reuses `make test`'s build. Findings land
# in target/fuzz-findings/.
FUZZ_ITERS ?= 6000
FUZZ_ITERS_CHEAP ?= 30000
FUZZ_SEED ?= 0x48414c4c4d41524b
fuzz: setup
	HALLMARK_FUZZ_ITERS=$(FUZZ_ITERS) HALLMARK_FUZZ_ITERS_C2PA=$(FUZZ_ITERS_CHEAP) \
	HALLMARK_FUZZ_ITERS_MULTIPART=$(FUZZ_ITERS_CHEAP) HALLMARK_FUZZ_SEED=$(FUZZ_SEED) \
	cargo test --test fuzz -- --nocapture

# The bundle a lent GPU machine runs (docs/gpu.md): a release hallmark built against libtorch 2.11
# (tch 0.24, the device's PyTorch) in a copy of the tree, stripped, with the libraries the device
# lacks, PostgreSQL 16 and wrk, in device-bundle/ (ignored; carried to the device with the call).
# A second venv (torch 2.11, ~5 GB) and a second release build (~15 min on 2 cores) the first time.
device-bundle: setup
	scripts/device-bundle.sh
