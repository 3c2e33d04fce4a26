# tapvault - see README.md. Every target works on a fresh Debian 12 machine
# as root: the ones that need packages run `setup` first.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/tapvault
PKGS := ./...
FUZZTIME ?= 10s

.PHONY: setup build test test-race faults bench bench-quick fuzz-smoke lint demo clean groundtruth groundtruth-test

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/tapvault
	CGO_ENABLED=0 $(GO) build -o /dev/null ./...

test: setup
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -count=1 -timeout 20m $(PKGS)

# The fault-injection suite alone (docs/faults.md); make test runs it too.
faults: setup
	$(GO) test -count=1 -timeout 20m -run '^TestFault' $(PKGS)

# The ground-truth table (docs/validation.md): real kernels, servers and
# clients in network namespaces, captured at three points; needs root. Exits
# non-zero when a check fails, known-bad ones (groundtruth/knownbad.go)
# included. go test ./groundtruth runs the same and logs the known-bad ones.
groundtruth: build
	$(GO) run ./groundtruth/cmd/groundtruth --tapvault $(BIN)

# The same as a test, alone (it times real traffic: go test ./... skips it
# unless TAPVAULT_GROUNDTRUTH is set); .ci/run runs it after make test.
groundtruth-test: build
	TAPVAULT_GROUNDTRUTH=1 TAPVAULT_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 15m -run '^TestGroundTruth$$' ./groundtruth

test-race: setup
	$(GO) test -count=1 -race -timeout 30m $(PKGS)

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -timeout 60m $(PKGS)

# Under two minutes, for before/after comparisons in one run (CI does not run
# it): both replay paths and a short loss-free search, for 64 B and IMIX.
bench-quick: build
	$(BIN) bench --kinds udp64,imix --packets 300000 --loops 2 --sources ring,pcap --search --trial 3s --max-trials 4 --out bench-out

fuzz-smoke: setup
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

lint: setup
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

demo: build
	@bash scripts/demo.sh

clean:
	rm -rf bin demo-out
