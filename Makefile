# The two commands a new machine needs: `make demo` and `make test`.
.PHONY: demo test deps build helpers vet lint fuzz bench

demo:
	go run . demo

# Installs what the tests need (sshd, sqlite3, zstd, versitygw...) and runs
# the whole suite against real servers on loopback.
test: deps
	go vet ./...
	go test -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=5s

# Each fuzz target briefly (CI) or longer: make fuzz FUZZTIME=5m
FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME) ./internal/catalog
	go test -run '^$$' -fuzz '^FuzzSplit$$' -fuzztime $(FUZZTIME) ./internal/catalog
	go test -run '^$$' -fuzz '^FuzzNewHostKeys$$' -fuzztime $(FUZZTIME) ./internal/remote

deps:
	bash .ci/deps.sh

build:
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o sqlite-backup-action .

helpers:
	for arch in amd64 arm64; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -trimpath -ldflags="-s -w" \
	    -o dist/helpers/sqlite-backup-helper-linux-$$arch ./cmd/sqlite-backup-helper; \
	done

# The hand-written pipeline (sqlite3 + scp + zstd + s5cmd) against this tool,
# same databases, same live writer, same run. BENCH_MIB sets the total size.
BENCH_MIB ?= 1024
bench:
	bash bench/deps.sh
	SBA_BENCH_MIB=$(BENCH_MIB) go test ./internal/app -run '^$$' -bench 'Pipelines' -benchtime 2x -timeout 30m -v

# actionlint (pinned, installed into .ci/bin) over the workflows, the
# examples and a workflow giving the local action every input.
lint:
	bash .ci/actionlint.sh
