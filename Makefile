# callsign — build, test and generate with nothing but Go installed.
# Build tools are pinned below and installed into .bin/ (ignored by git); they are
# never requirements of the library module.

SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)
export GOBIN := $(BIN)

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GOLANGCI_LINT_VERSION      := v2.15.0
GRPCURL_VERSION            := v1.9.3
BENCHSTAT_VERSION          := v0.0.0-20260908200009-22c9c6c9d4da

GO_TEST_FLAGS ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Each tool is installed once per pinned version; the stamp file records it.
$(BIN)/.buf-$(BUF_VERSION):
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@
$(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@
$(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@
$(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION):
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@
$(BIN)/.grpcurl-$(GRPCURL_VERSION):
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	@touch $@
$(BIN)/.benchstat-$(BENCHSTAT_VERSION):
	go install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	@touch $@

GEN_TOOLS := $(BIN)/.buf-$(BUF_VERSION) $(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) $(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: tools
tools: $(GEN_TOOLS) $(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION) $(BIN)/.grpcurl-$(GRPCURL_VERSION) $(BIN)/.benchstat-$(BENCHSTAT_VERSION) ## Install the pinned build tools into .bin/

.PHONY: generate
generate: $(GEN_TOOLS) ## Regenerate gen/ from proto/ with buf
	find gen internal/gen examples -path '*/gen/*' \( -name '*.pb.go' \) -delete 2>/dev/null || true
	buf generate
	buf format -w

.PHONY: checkgenerate
checkgenerate: generate ## Fail when regenerating changes anything (CI)
	@if [ -n "$$(git status --porcelain -- gen internal/gen examples proto internal/testproto)" ]; then \
		echo "generated code is out of date: run 'make generate' and commit the result"; \
		git status --porcelain -- gen internal/gen examples proto internal/testproto; \
		git --no-pager diff --stat; exit 1; fi

.PHONY: lint
lint: $(BIN)/.buf-$(BUF_VERSION) $(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION) ## go vet, golangci-lint, buf lint, buf format check
	go vet ./...
	golangci-lint run ./...
	buf lint
	buf format -d --exit-code

.PHONY: test
test: ## Run all tests with the race detector
	go test -race $(GO_TEST_FLAGS) ./...

FUZZTIME ?= 10s

.PHONY: soak
soak: ## Long fault runs with real callsignd processes, then every fuzz target (CI)
	CALLSIGN_SOAK=1 go test -race -count=1 -timeout 15m ./internal/faults/
	CALLSIGN_SOAK=1 go test -count=1 -timeout 10m -run '^TestCacheMemoryBounded$$' ./internal/faults/
	$(MAKE) fuzz

# Each package's instrumented test binary is built once and run for each of
# its fuzz targets, from the package directory (for testdata/fuzz) and with the
# go command's fuzz cache. A failing input is written to testdata/fuzz and fails
# the run; a target that stops with an error but writes no input hit Go's
# fuzztime deadline race (go.dev/issue/75804, fixed in Go 1.27) and runs once
# more.
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s)
	@set -e; bin=$$(mktemp -d); trap 'rm -rf "$$bin"' EXIT; cache=$$(go env GOCACHE)/fuzz; \
	for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		pkg=$$(go list $$dir); \
		go test -c -fuzz=. -o "$$bin/fuzz.test" $$dir; \
		for fz in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$pkg $$fz ($(FUZZTIME))"; \
			seeds=$$(ls $$dir/testdata/fuzz/$$fz 2>/dev/null | wc -l); \
			if ! (cd $$dir && "$$bin/fuzz.test" -test.run='^$$' -test.fuzz="^$$fz$$" -test.fuzztime=$(FUZZTIME) -test.fuzzcachedir="$$cache/$$pkg"); then \
				if [ "$$(ls $$dir/testdata/fuzz/$$fz 2>/dev/null | wc -l)" != "$$seeds" ]; then exit 1; fi; \
				echo "== $$fz stopped without a failing input (go.dev/issue/75804, a race of Go's fuzz coordinator at the fuzztime deadline): once more"; \
				(cd $$dir && "$$bin/fuzz.test" -test.run='^$$' -test.fuzz="^$$fz$$" -test.fuzztime=$(FUZZTIME) -test.fuzzcachedir="$$cache/$$pkg"); \
			fi; \
		done; \
	done

.PHONY: bench
bench: $(BIN)/.benchstat-$(BENCHSTAT_VERSION) ## Run the benchmark suite, print the ratio table (about 12 min on 2 cores)
	go run ./bench/cmd/benchtable -count=6 -o bench.out
	benchstat bench.out > bench.benchstat.out
	@echo "benchstat's view of the same run: bench.benchstat.out"

.PHONY: demo
demo: ## Run callsignd and the shop example end to end
	go run ./examples/shop/cmd/demo
