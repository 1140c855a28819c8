# redms — see README.md. Every module builds and tests on its own (GOWORK=off).
SHELL := /bin/bash
MODULES := pkg services/capture services/loader services/rsemu services/devstack services/verify .
BIN := $(CURDIR)/bin
TOOLS := $(CURDIR)/.tools
export GOWORK := off

STATICCHECK_VERSION := v0.8.2
PROTOC_GEN_GO_VERSION := v1.36.12
NATSCLI_VERSION := v0.5.0

FUZZTIME ?= 10s
BENCHTIME ?= 1x
TESTFLAGS ?= -race -shuffle=on -count=1 -timeout 28m

.PHONY: all build test lint fuzz bench soak demo docs proto proto-check tools docker clean

all: build

build:
	@mkdir -p $(BIN)
	cd services/capture && go build -o $(BIN)/redms-capture .
	cd services/loader && go build -o $(BIN)/redms-loader .
	cd services/rsemu && go build -o $(BIN)/redms-rsemu .
	cd services/devstack && go build -o $(BIN)/redms-devstack .
	cd services/verify && go build -o $(BIN)/redms-verify .

# Every module runs even when an earlier one fails, so one run shows them all.
test:
	@failed=""; for m in $(MODULES); do \
		echo "=== go test $$m"; \
		(cd $$m && go test $(TESTFLAGS) ./...) || failed="$$failed $$m"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED modules:$$failed"; exit 1; fi

lint: proto-check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "=== vet+staticcheck $$m"; \
		(cd $$m && go vet ./... && $(TOOLS)/staticcheck ./...); \
	done

# Runs every fuzz target of every module's packages for FUZZTIME each.
fuzz:
	@set -e; for m in $(MODULES); do \
		for d in $$(cd $$m && go list -f '{{.Dir}}' ./...); do \
			for t in $$(cat $$d/*_test.go 2>/dev/null | grep -o '^func Fuzz[A-Za-z0-9_]*' | cut -d' ' -f2); do \
				echo "=== fuzz $$d $$t"; \
				(cd $$d && go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) .); \
			done; \
		done; \
	done

bench:
	@set -e; for m in $(MODULES); do \
		echo "=== bench $$m"; \
		(cd $$m && go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m ./...); \
	done

# Long runs of the end-to-end tests: pgbench flat out through the Redshift
# emulator for 5 minutes (make test runs it for 30 s), then the randomized
# fault soak for SOAK (make test runs it for 2 minutes). A failing soak
# prints its seed: replay it with make soak SOAK=<d> REDMS_SOAK_SEED=<seed>.
SOAK_PGBENCH_DURATION ?= 5m
SOAK ?= 10m
soak:
	cd e2e && REDMS_E2E_PGBENCH_DURATION=$(SOAK_PGBENCH_DURATION) go test -race -count=1 -timeout 60m -v -run 'TestPgbenchRedshift$$' .
	cd e2e && REDMS_SOAK_DURATION=$(SOAK) go test -race -count=1 -timeout 180m -v -run 'TestSoak$$' .

demo: build
	$(BIN)/redms-devstack demo

# Regenerates README's configuration reference from the Config structs.
docs:
	cd deploycheck && go test -count=1 -run TestConfigReference -update .

tools:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

proto:
	@mkdir -p pkg/redmsv1
	PATH=$(TOOLS):$$PATH protoc -I proto --go_out=pkg/redmsv1 --go_opt=paths=source_relative proto/redms/v1/*.proto
	@# protoc writes under the proto package path; flatten into pkg/redmsv1
	@if [ -d pkg/redmsv1/redms/v1 ]; then mv pkg/redmsv1/redms/v1/*.go pkg/redmsv1/ && rm -rf pkg/redmsv1/redms; fi

proto-check: proto
	@git diff --exit-code -- pkg/redmsv1 || (echo "generated protobuf code is stale: run make proto and commit"; exit 1)

docker:
	docker build -f deploy/docker/Dockerfile --target capture -t redms-capture .
	docker build -f deploy/docker/Dockerfile --target loader -t redms-loader .

clean:
	rm -rf $(BIN)
