# The two set-up commands: `make demo` (the main job on the embedded default) and `make test`.
# Everything builds in release mode with testing enabled, so the demo, the tests and the
# benchmarks share one build (the numeric code is 30-60x slower in a debug build).
SWIFT ?= swift
BUILD_FLAGS = -c release -Xswiftc -enable-testing
BIN = .build/release/autosam
DEMO ?= .demo

.PHONY: bootstrap build demo test clean samples install asan tsan fuzz-build fuzz

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --product autosam

# The main job: the clinical service on the embedded default head. Starts `autosam watch` on
# a throwaway data folder, drops sample phantom studies into its inbox (an ACDC patient
# folder, a 4D NIfTI cine with its Info.cfg, a DICOM study copied file by file), waits for their
# outputs, prints the status and the stats, and stops the daemon.
DEMO_TIMEOUT ?= 900
demo: build
	rm -rf $(DEMO) && mkdir -p $(DEMO)/samples
	$(BIN) phantom --out $(DEMO)/samples/acdc --patients 1 --seed 1 --no-cine
	$(BIN) phantom --out $(DEMO)/samples/cine --patients 1 --seed 1 --first 2
	$(BIN) dicom-phantom --out $(DEMO)/samples/dicom --patients 1 --seed 1 --first 3 --scramble
	printf '[paths]\ndata = "%s/data"\n[inbox]\nquiet_period_s = 2\npoll_interval_s = 0.5\n' "$(abspath $(DEMO))" > $(DEMO)/autosam.toml
	@set -e; bin="$(abspath $(BIN))"; demo="$(abspath $(DEMO))"; inbox="$$demo/data/inbox"; \
	"$$bin" watch --config "$$demo/autosam.toml" > "$$demo/daemon.log" 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 600); do [ -f "$$demo/data/journal.sqlite" ] && break; sleep 0.2; done; \
	echo "daemon started (pid $$pid, log $(DEMO)/daemon.log); dropping 3 studies into $(DEMO)/data/inbox"; \
	cp -r "$$demo/samples/acdc/patient001" "$$inbox/.patient001" && mv "$$inbox/.patient001" "$$inbox/patient001"; \
	mkdir "$$inbox/.cine002" && cp "$$demo/samples/cine/patient002/patient002_4d.nii.gz" "$$demo/samples/cine/patient002/Info.cfg" "$$inbox/.cine002/" && mv "$$inbox/.cine002" "$$inbox/cine002"; \
	mkdir "$$inbox/dicom003"; for f in "$$demo"/samples/dicom/patient003/*; do cp "$$f" "$$inbox/dicom003/"; done; \
	start=$$(date +%s); \
	while :; do \
	  [ "$$("$$bin" status --config "$$demo/autosam.toml" --count finished)" -ge 3 ] && break; \
	  kill -0 $$pid 2>/dev/null || { echo "the daemon exited:"; cat "$$demo/daemon.log"; exit 1; }; \
	  [ $$(( $$(date +%s) - start )) -gt $(DEMO_TIMEOUT) ] && { echo "timed out"; cat "$$demo/daemon.log"; exit 1; }; \
	  sleep 2; \
	done; \
	echo "all 3 studies finished in $$(( $$(date +%s) - start )) s"; \
	kill -TERM $$pid; wait $$pid; trap - EXIT; \
	echo; "$$bin" status --config "$$demo/autosam.toml"; \
	echo; echo "outputs:"; (cd "$$demo/data/outbox" && find . -type f | sort | sed 's|^./|  outbox/|'); \
	echo; echo "stats (outbox/cohort.csv):"; \
	awk -F, '{ printf "  %-16s %-14s %4s %4s %8s %8s %7s %8s %8s %7s %11s %6s  %s\n", $$5, $$2, $$6, $$7, $$11, $$12, $$14, $$15, $$18, $$21, $$(NF-1), $$NF, $$3 }' "$$demo/data/outbox/cohort.csv"; \
	echo; echo "daemon log: $(DEMO)/daemon.log; data: $(DEMO)/data"

# Tests write their temporary folders under one folder of their own, removed afterwards
# whatever the outcome (the exit status is the test run's).
test: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/autosam-tests.XXXXXX") || exit 1; \
	TMPDIR="$$tmp" $(SWIFT) test $(BUILD_FLAGS) --skip-build; rc=$$?; rm -rf "$$tmp"; exit $$rc

# Sanitizers (docs/RELIABILITY.md): the suite built with AddressSanitizer, and the parts that
# run threads (the daemon, the thread pool, the journal) with ThreadSanitizer, each in a build
# folder of its own. Not in `make test` (several times slower); run before a release.
SANITIZER_FILTER_TSAN ?= ServiceTests|Parallel|Journal|Concurren
# The C targets are not instrumented for TSan: the kernels' per-ISA clones are chosen by IFUNC
# resolvers, which run during relocation, before TSan's runtime exists (instrumented, they
# crash every binary at load).
TSAN_C_FLAGS = -Xcc -fno-sanitize=thread
asan: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --build-tests --sanitize=address --build-path .build-asan
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/autosam-tests.XXXXXX") || exit 1; \
	TMPDIR="$$tmp" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 $(SWIFT) test $(BUILD_FLAGS) --sanitize=address --build-path .build-asan --skip-build $(if $(FILTER),--filter '$(FILTER)'); rc=$$?; rm -rf "$$tmp"; exit $$rc
tsan: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --build-tests --sanitize=thread --build-path .build-tsan $(TSAN_C_FLAGS)
	@tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/autosam-tests.XXXXXX") || exit 1; \
	TMPDIR="$$tmp" TSAN_OPTIONS=halt_on_error=1 AUTOSAM_SOAK=0 $(SWIFT) test $(BUILD_FLAGS) --sanitize=thread --build-path .build-tsan $(TSAN_C_FLAGS) --skip-build --filter '$(or $(FILTER),$(SANITIZER_FILTER_TSAN))'; rc=$$?; rm -rf "$$tmp"; exit $$rc

# Fuzzing (docs/RELIABILITY.md): `autosam-fuzz` built with libFuzzer and AddressSanitizer
# (the C and C++ shims instrumented too), then each harness fuzzed for FUZZ_SECONDS from the
# committed seeds; new findings land in .fuzz/<harness>/ (crash-*, timeout-*, oom-*).
# FUZZ_RUNS=N runs N inputs per harness from a fixed seed instead (the same everywhere; CI).
FUZZ_SECONDS ?= 10
FUZZ_RUNS ?=
FUZZ_HARNESSES ?= checkpoint pickle safetensors nifti dicom-file dicom-study config info-cfg embedding-cache head-model
FUZZ_BIN = .build-fuzz/release/autosam-fuzz
fuzz-build: bootstrap
	$(SWIFT) build $(BUILD_FLAGS) --build-path .build-fuzz --product autosam-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DAUTOSAM_LIBFUZZER -Xswiftc -use-ld=lld \
	  -Xcc -fsanitize=fuzzer-no-link,address -Xcxx -fsanitize=fuzzer-no-link,address
fuzz: fuzz-build
	@FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz/run.sh $(FUZZ_BIN) $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

# Regenerates the committed sample studies.
samples: build
	rm -rf samples/phantom
	$(BIN) phantom --out samples/phantom --patients 3 --seed 2026 --no-cine

# Installs the service: the binary, the configuration (kept if one exists), the systemd unit
# with sysusers/tmpfiles snippets, and the README. DESTDIR stages a package; without it the
# system user and folders are created and systemd reloaded (enable with
# `systemctl enable --now autosam`).
PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
UNITDIR ?= $(SYSCONFDIR)/systemd/system
WEIGHTSDIR ?= /var/lib/autosam/weights
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/autosam
	# The embedded default head is a resource bundle the binary finds beside itself.
	rm -rf $(DESTDIR)$(PREFIX)/bin/autosam_AutoSAM.resources
	cp -r $(dir $(BIN))autosam_AutoSAM.resources $(DESTDIR)$(PREFIX)/bin/
	test -e $(DESTDIR)$(SYSCONFDIR)/autosam/autosam.toml || install -D -m 0644 Config/autosam.toml $(DESTDIR)$(SYSCONFDIR)/autosam/autosam.toml
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/autosam|$(PREFIX)/bin/autosam|' -e 's|/etc/autosam/|$(SYSCONFDIR)/autosam/|' \
	    -e 's|/usr/local/share/doc|$(PREFIX)/share/doc|' systemd/autosam.service > $(DESTDIR)$(UNITDIR)/autosam.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/autosam.service
	sed -e 's|/usr/local/bin/autosam|$(PREFIX)/bin/autosam|' -e 's|/etc/autosam/|$(SYSCONFDIR)/autosam/|' \
	    -e 's|/usr/local/share/doc|$(PREFIX)/share/doc|' systemd/autosam-web.service > $(DESTDIR)$(UNITDIR)/autosam-web.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/autosam-web.service
	install -D -m 0644 systemd/autosam.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/autosam.conf
	install -D -m 0644 systemd/autosam.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/autosam.conf
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/autosam/README.md
	# For workers sharing a queue in PostgreSQL: the guide and the unit drop-in to adapt (not enabled).
	install -D -m 0644 docs/DEPLOYMENT.md $(DESTDIR)$(PREFIX)/share/doc/autosam/DEPLOYMENT.md
	install -D -m 0644 systemd/shared-queue.conf $(DESTDIR)$(PREFIX)/share/doc/autosam/shared-queue.conf
	# The service's encoder weights (verified by size and SHA-256; nothing done when present).
	AUTOSAM_WEIGHTS_DIR=$(DESTDIR)$(WEIGHTSDIR) scripts/fetch_weights.sh
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
	    systemd-sysusers $(PREFIX)/lib/sysusers.d/autosam.conf && \
	    systemd-tmpfiles --create $(PREFIX)/lib/tmpfiles.d/autosam.conf && \
	    systemctl daemon-reload && echo "installed; start with: systemctl enable --now autosam"; \
	else echo "installed into $(DESTDIR)$(PREFIX) (systemd not running here: run systemd-sysusers, systemd-tmpfiles --create and systemctl daemon-reload on the target)"; fi

clean:
	rm -rf .build $(DEMO)
