# meridian build and checks. `make check` is what CI runs.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO     ?= go
MODULE := github.com/meridian-edge/meridian
BIN    := bin/meridian

# Release version stamped into internal/version; "dev" outside a git checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  = -s -w -X $(MODULE)/internal/version.Version=$(VERSION)

# golangci-lint is pinned; `make tools` installs exactly this version.
GOLANGCI_LINT_VERSION := v2.15.0
GOBIN_DIR     := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
GOLANGCI_LINT ?= $(if $(wildcard $(GOBIN_DIR)/golangci-lint),$(GOBIN_DIR)/golangci-lint,golangci-lint)

BENCH_PKGS := ./dnsserver/ ./policy/ ./proxy/ ./geo/
FUZZTIME   ?= 10s

.PHONY: all build test lint fmt-check vet tidy-check check deploy-check tools fuzz-smoke bench clean

all: check build

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/meridian

test:
	$(GO) test -race ./...

lint:
	@have="$$($(GOLANGCI_LINT) version --short 2>/dev/null || echo none)"; \
	if [ "v$$have" != "$(GOLANGCI_LINT_VERSION)" ]; then \
		echo "lint: want golangci-lint $(GOLANGCI_LINT_VERSION), found $$have at $(GOLANGCI_LINT); run make tools"; \
		exit 1; \
	fi
	$(GOLANGCI_LINT) run

# Lists every Go file gofmt would change, outside hidden dirs, testdata and bin.
fmt-check:
	@files="$$(find . \( -name '.?*' -o -name testdata -o -name bin -o -name vendor \) -prune -o -name '*.go' -print)"; \
	if [ -z "$$files" ]; then echo "fmt-check: no Go files"; exit 1; fi; \
	unformatted="$$(gofmt -l $$files)"; \
	if [ -n "$$unformatted" ]; then \
		echo "fmt-check: these files are not gofmt-formatted (run gofmt -w):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

vet:
	$(GO) vet ./...

# go.mod and go.sum must be what `go mod tidy` makes of them: direct
# dependencies listed as direct, nothing unused.
tidy-check:
	@if ! out="$$($(GO) mod tidy -diff 2>&1)"; then \
		echo "tidy-check: go mod tidy would change go.mod/go.sum (run go mod tidy):"; \
		echo "$$out"; \
		exit 1; \
	fi

check: tools fmt-check vet tidy-check lint test

# Checks the files of deploy/ with the tools that read them: promtool (the
# alert rules and their unit tests) and systemd-analyze verify (the unit,
# with ExecStart pointed at a freshly built binary; any warning fails).
# The deploy package's Go tests run the same checks and more.
deploy-check:
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	$(GO) build -o "$$tmp/meridian" ./cmd/meridian; \
	sed "s#/usr/bin/meridian#$$tmp/meridian#g" deploy/systemd/meridian.service >"$$tmp/meridian.service"; \
	out="$$(systemd-analyze verify "$$tmp/meridian.service" 2>&1)" || { echo "$$out"; exit 1; }; \
	if [ -n "$$out" ]; then echo "systemd-analyze verify deploy/systemd/meridian.service:"; echo "$$out"; exit 1; fi; \
	echo "systemd-analyze verify deploy/systemd/meridian.service: ok"

# Installs the pinned golangci-lint into $(GOBIN_DIR) unless it is already there.
tools:
	@if [ "$$($(GOBIN_DIR)/golangci-lint version --short 2>/dev/null || true)" = "$(GOLANGCI_LINT_VERSION:v%=%)" ]; then \
		echo "golangci-lint $(GOLANGCI_LINT_VERSION) already installed"; \
	else \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) (takes a few minutes)"; \
		GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

# Runs each fuzz target for FUZZTIME; go test -fuzz takes one target of one
# package at a time. Targets are found in the sources (listing them with
# go test -list would build every package's tests once more).
fuzz-smoke:
	@targets="$$(grep -rE --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git -o '^func Fuzz[A-Za-z0-9_]*' . | sed 's/:func /\t/' | sort)"; \
	if [ -z "$$targets" ]; then echo "fuzz-smoke: no fuzz targets"; exit 1; fi; \
	while IFS=$$'\t' read -r file fn; do \
		pkg="./$$(dirname "$${file#./}")"; \
		for try in 1 2 3; do \
			echo "fuzz $$pkg $$fn"; \
			rc=0; out="$$($(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg" 2>&1)" || rc=$$?; \
			printf '%s\n' "$$out"; \
			if [ $$rc -eq 0 ]; then break; fi; \
			if printf '%s\n' "$$out" | grep -q 'Failing input written' || \
				! printf '%s\n' "$$out" | grep -qx '    context deadline exceeded' || [ $$try -eq 3 ]; then exit 1; fi; \
			echo "fuzz-smoke: $$fn stopped on the fuzz coordinator's deadline race (golang/go#75804) with no failing input: run again"; \
		done; \
	done <<< "$$targets"

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_PKGS)

clean:
	rm -rf bin
