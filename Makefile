# The two commands a newcomer needs:
#   make run    set up everything, then serve the shipped model against the local database
#   make test   set up everything, then run formatting, lint and all tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CACHE_DIR ?= $(or $(HALLMARK_CACHE),$(HOME)/.cache/hallmark)
VENV := $(CACHE_DIR)/venv
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export HALLMARK_PYTHON := $(VENV)/bin/python
export HALLMARK_NODE_MODULES := $(CACHE_DIR)/node/node_modules
# The database the tests create their per-test databases next to.
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/hallmark

.PHONY: setup build run test lint bench
setup:
	scripts/setup.sh

build: setup
	cargo build --release

run: build
	./target/release/hallmark init
	./target/release/hallmark serve

lint: setup
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

test: lint
	cargo test

bench: setup
	cargo bench
