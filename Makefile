# The two set-up commands: `make demo` (the main job on the embedded default) and `make test`.
# Everything builds in release mode with testing enabled, so the demo, the tests and the
# benchmarks share one build (the numeric code is 30-60x slower in a debug build).
SWIFT ?= swift
BUILD_FLAGS = -c release -Xswiftc -enable-testing
BIN = .build/release/autosam
DEMO ?= .demo

.PHONY: bootstrap build demo test clean samples

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --product autosam

# Main job at this stage: synthesise a small cohort of cine studies and report their
# volumetric stats, checked against the phantom's analytic truth.
demo: build
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN) phantom --out $(DEMO)/studies --patients 5 --seed 1
	$(BIN) stats $(DEMO)/studies --check-truth --csv $(DEMO)/cohort.csv --json-dir $(DEMO)/stats
	@echo "outputs in $(DEMO): studies/ (ACDC layout), cohort.csv, stats/*.json"

test: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build

# Regenerates the committed sample studies.
samples: build
	rm -rf samples/phantom
	$(BIN) phantom --out samples/phantom --patients 3 --seed 2026 --no-cine

clean:
	rm -rf .build $(DEMO)
