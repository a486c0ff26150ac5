# stcache: `make cluster` starts the tutorial's three nodes, `make test` runs every check.
GO      ?= go
BIN     := ./stcached
CLUSTER := cluster
NODES   := 1 2 3

.PHONY: build test fmt-check vet staticcheck gotest cluster stop clean bench jepsen

build:
	$(GO) build -o $(BIN) .

# Every check CI runs. The fault test's short version and the fuzz targets run inside gotest.
test: fmt-check vet staticcheck gotest

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi; echo "gofmt ok"

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

gotest:
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommands$$' -fuzztime 5s .
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPRequest$$' -fuzztime 5s .

# The tutorial's demo: node1 bootstraps on 6000/7000, node2 and node3 join it
# (they retry until node1 leads). Logs and data go under ./cluster/.
cluster: build
	@mkdir -p $(CLUSTER)
	@for i in $(NODES); do \
	  if [ -f $(CLUSTER)/node$$i.pid ] && kill -0 $$(cat $(CLUSTER)/node$$i.pid) 2>/dev/null; then \
	    echo "node$$i already running (pid $$(cat $(CLUSTER)/node$$i.pid)); 'make stop' first"; exit 1; fi; \
	done
	@for i in $(NODES); do \
	  h=127.0.0.1:600$$((i-1)); r=127.0.0.1:700$$((i-1)); \
	  if [ $$i = 1 ]; then extra=-bootstrap; else extra="-join 127.0.0.1:6000"; fi; \
	  $(BIN) -node node$$i -dir $(CLUSTER)/node$$i -http $$h -raft $$r $$extra \
	    >$(CLUSTER)/node$$i.log 2>&1 & echo $$! >$(CLUSTER)/node$$i.pid; \
	done
	@for t in $$(seq 1 150); do \
	  if grep -q "joined cluster" $(CLUSTER)/node2.log 2>/dev/null && grep -q "joined cluster" $(CLUSTER)/node3.log 2>/dev/null; then break; fi; \
	  if grep -qE "existing_state=true" $(CLUSTER)/node3.log 2>/dev/null && [ $$t -gt 20 ]; then break; fi; \
	  sleep 0.2; \
	done
	@echo "3 nodes up; logs and data in ./$(CLUSTER)/"
	@echo "  node1 http 127.0.0.1:6000 raft 127.0.0.1:7000 (bootstrapped, the leader)"
	@echo "  node2 http 127.0.0.1:6001 raft 127.0.0.1:7001"
	@echo "  node3 http 127.0.0.1:6002 raft 127.0.0.1:7002"
	@echo "try:"
	@echo "  curl '127.0.0.1:6000/set?key=ping&value=pong'"
	@echo "  curl '127.0.0.1:6001/get?key=ping'"
	@echo "  curl 127.0.0.1:6002/status"
	@echo "stop with: make stop"

# Stops exactly the nodes `make cluster` started (by the PIDs it recorded).
stop:
	@for i in $(NODES); do \
	  f=$(CLUSTER)/node$$i.pid; [ -f $$f ] || continue; p=$$(cat $$f); \
	  if kill -0 $$p 2>/dev/null; then kill -TERM $$p && echo "stopping node$$i (pid $$p)"; fi; \
	done
	@for i in $(NODES); do \
	  f=$(CLUSTER)/node$$i.pid; [ -f $$f ] || continue; p=$$(cat $$f); \
	  for t in $$(seq 1 100); do kill -0 $$p 2>/dev/null || break; sleep 0.1; done; rm -f $$f; \
	done

clean: stop
	rm -rf $(BIN) $(CLUSTER) stbench
