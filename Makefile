# herald: two commands matter.
#   make run    herald on its embedded default (no Redis), in --dev mode
#   make test   everything CI runs: installs what the tests need, then
#               gofmt, go vet, go test -race, the deployment checks, the
#               JavaScript client's tests, the browser tests and the
#               three-way benchmark's smoke test

GO ?= go
# herald --version and herald_build_info name the build.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS = -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: run test deps check test-go test-js test-peers build fuzz bench soak chaos

# Built first, then run (not go run): Ctrl-C reaches herald, which drains
# and exits 0, so make ends cleanly.
run:
	@echo "make run: building herald into bin/herald (the first build downloads modules and compiles for a few minutes)"
	@$(GO) build -ldflags "$(LDFLAGS)" -o bin/herald ./cmd/herald
	@echo "make run: starting herald --dev on http://127.0.0.1:8080/ (Ctrl-C stops it)"
	@exec bin/herald --dev --log-format console

test: deps check test-go test-js test-peers

deps:
	./scripts/test-deps.sh

check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Package tests run two at a time; the multi-process cluster suites under
# deploy/ (3 replicas behind nginx, rolling restarts, faults) then run one
# package at a time, so that their reconnect-delay bounds measure herald and
# not a machine busy with other packages' tests. The allocation tests run
# again without -race (under it sync.Pool drops items at random, so they
# skip).
test-go:
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v '/deploy')
	$(GO) test -race -count=1 -timeout 30m -p 1 ./deploy/...
	$(GO) test -count=1 -run 'Allocat' ./gateway/... ./internal/resp/
	# The Redis brokers again with the lock order checked at run time
	# (docs/LOCKS.md): an inverted order panics.
	$(GO) test -race -count=1 -tags lockorder ./fanout/redis/ ./internal/lockorder/

# The browser client (clients/js): its Node tests against a real herald, then
# the demo and the client in headless Chromium. Both build herald themselves.
test-js:
	cd clients/js && npm ci --no-audit --no-fund && npm test && npm run test:browser

# The three-way benchmark (herald, the Node peer, the bare-socket floor;
# scripts/peers/compare.sh) at a tiny size: it runs and every server passes
# the load tester's checks. The full size is in docs/BENCHMARKS.md.
test-peers:
	SOCKETS=50 RATE=200 DURATION=2s ROUNDS=1 scripts/peers/compare.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/herald ./cmd/herald

fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzInbound -fuzztime=30s ./internal/wsframe/

bench:
	$(GO) test -run=^$$ -bench=. -benchmem ./...

# The socket core's stress test at soak size (minutes, not part of make test).
soak:
	$(GO) test -race -tags soak -count=1 -timeout 60m -run TestStressSmallReceiveBuffers ./gateway/

# The chaos test (about 60 s): replicas and Redis bounced at random under load.
chaos:
	$(GO) test -tags chaos -count=1 -run TestChaos -v ./deploy/fault/
