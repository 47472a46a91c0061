# KVScope — `make demo` runs the main job, `make test` runs every test.
# Both install the system packages they need (Debian: apt-get) when they are missing.

SWIFT        ?= swift
APT_PACKAGES := libcairo2-dev fonts-dejavu-core zlib1g-dev libisal-dev pkg-config
DEMO_TRACE_DIR ?= Examples/traces/smollm2-pseudoimg2x64-gen16-w24
OUT          ?= Output/demo

FUZZ_SECONDS ?= 60

.PHONY: all deps build release test test-swift test-python test-slurm demo bench fuzz format clean

all: build

## deps: install the Debian packages the build needs, when absent
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product kvscope

## test: build, then the Swift tests and the Python exporter tests
test: deps
	$(SWIFT) build --build-tests
	$(MAKE) --no-print-directory test-python
	$(SWIFT) test --skip-build

test-swift: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

test-python:
	@if [ -f Examples/export/run_tests.sh ]; then \
	  KVSCOPE_BIN=$(CURDIR)/.build/debug/kvscope bash Examples/export/run_tests.sh $(CURDIR)/Tests/python; \
	fi

## format: rewrite Sources/ and Tests/ in place with swift-format (the toolchain's `swift format`,
## settings in .swift-format)
format:
	$(SWIFT) format --in-place --recursive --parallel Sources Tests

## test-slurm: a one-node Slurm cluster on this machine (installs slurm-wlm and munge when absent):
## a 4-task job array of a sharded sweep, collected, byte-identical to the single-process sweep;
## then one task cancelled mid-run, resubmitted, collected again
test-slurm: deps
	$(SWIFT) build --product kvscope
	bash Tests/slurm/run.sh .build/debug/kvscope

## demo: release build, then every figure from the shipped real trace and a synthetic
## LLaVA-geometry trace, a budget sweep with its curves, into Output/demo/ (gallery: Output/gallery/)
demo: release
	@test -d "$(DEMO_TRACE_DIR)" || { echo "make: no trace at $(DEMO_TRACE_DIR)" >&2; exit 2; }
	DEMO_TRACE=$(DEMO_TRACE_DIR) OUT=$(OUT) bash Scripts/demo.sh .build/release/kvscope

## bench: benchmarks (never timed tests), compared with NumPy / matplotlib (and the official LOOK-M
## code with LOOKM_SRC=<checkout>) in the same command; Python packages go to .build/bench-venv
bench: deps
	@$(MAKE) --no-print-directory deps APT_PACKAGES="python3-venv time"
	$(SWIFT) build -c release
	bash Benchmarks/run.sh

## fuzz: libFuzzer + address sanitizer on the npy, npz, safetensors, trace.json and bare-array
## readers, FUZZ_SECONDS each (default 60); a crash is kept under
## Tests/KVTraceTests/Fixtures/fuzz-regressions/ and replayed by `make test` from then on
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash Scripts/fuzz.sh

clean:
	rm -rf .build .build-fuzz Output/demo
