# stcache: `make cluster` starts the tutorial's three nodes, `make test` runs every check.
GO      ?= go
BIN     := ./stcached
LAB     := ./stlab
CLUSTER := cluster
# make cluster N=5: five nodes (HTTP 6000-6004, Raft 7000-7004); the tutorial has three.
N       ?= 3
NODES   := $(shell seq 1 $(N))
# The lab supervisor's page and API (a port browsers allow), and the flags it
# gives every node besides -allow-origin for that page: the lab's link faults,
# and 128 entries kept behind a snapshot, so the page's snapshot lesson sends
# a lagging follower a snapshot after a few hundred writes, not ten thousand.
LABADDR := 127.0.0.1:6080
NODEFLAGS ?= -lab -trailing-logs 128

.PHONY: build test fmt-check vet staticcheck gotest cluster demo certs stop clean bench bench-etcd gobench jepsen perfcheck

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

# Fuzz budgets are execution counts (about 5 s each here), not durations: with a
# duration, Go's fuzz coordinator (up to go1.26, golang/go#75804) can report its
# own stop deadline as a failure, "context deadline exceeded", with no crasher.
gotest:
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommands$$' -fuzztime 20000x -timeout 5m .
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPRequest$$' -fuzztime 5000x -timeout 5m .
	$(GO) test -run '^$$' -fuzz '^FuzzReadSnapshot$$' -fuzztime 5000x -timeout 5m .
	$(GO) test -run '^$$' -fuzz '^FuzzGetParams$$' -fuzztime 20000x -timeout 5m .

# The tutorial's demo: node1 bootstraps on 6000/7000, node2 and node3 join it
# on 6001/7001 and 6002/7002 (they retry until node1 leads). Logs and data go
# under ./cluster/. The lab supervisor (cmd/stlab, ./stlab, on 127.0.0.1:6080)
# starts the nodes and owns them, so the page it serves can crash, restart,
# freeze and thaw them. Run it again after stopping or killing a node: it
# starts only the nodes that are not running (a node with data starts from
# it); if stlab runs, SIGHUP asks it to.
cluster: build
	$(GO) build -o $(LAB) ./cmd/stlab
	@mkdir -p $(CLUSTER)
	@marker='^=== make cluster: starting'; wait=""; for i in $(NODES); do \
	  pidf=$(CLUSTER)/node$$i.pid; log=$(CLUSTER)/node$$i.log; \
	  if [ -f $$pidf ] && kill -0 $$(cat $$pidf) 2>/dev/null; then echo "node$$i already running (pid $$(cat $$pidf))"; continue; fi; \
	  n=$$(grep -c "$$marker" $$log 2>/dev/null); wait="$$wait $$i:$${n:-0}"; \
	done; \
	labf=$(CLUSTER)/stlab.pid; \
	if [ -f $$labf ] && kill -0 $$(cat $$labf) 2>/dev/null; then \
	  lab=$$(cat $$labf); [ -z "$$wait" ] || kill -HUP $$lab; \
	else \
	  nohup $(LAB) -bin $(BIN) -dir $(CLUSTER) -n $(N) -addr $(LABADDR) -node-flags '$(NODEFLAGS)' </dev/null >>$(CLUSTER)/stlab.log 2>&1 & lab=$$!; \
	  for t in $$(seq 1 100); do [ "$$(cat $$labf 2>/dev/null)" = $$lab ] && break; kill -0 $$lab 2>/dev/null || break; sleep 0.1; done; \
	  kill -0 $$lab 2>/dev/null || { echo "stlab failed to start; see $(CLUSTER)/stlab.log:"; tail -3 $(CLUSTER)/stlab.log; exit 1; }; \
	  echo "stlab started: http://$(LABADDR)/, pid $$lab, log $(CLUSTER)/stlab.log"; \
	fi; \
	for w in $$wait; do \
	  i=$${w%%:*}; before=$${w#*:}; log=$(CLUSTER)/node$$i.log; ok=""; \
	  for t in $$(seq 1 150); do \
	    kill -0 $$lab 2>/dev/null || { echo "stlab exited; see $(CLUSTER)/stlab.log:"; tail -3 $(CLUSTER)/stlab.log; exit 1; }; \
	    n=$$(grep -c "$$marker" $$log 2>/dev/null); \
	    if [ "$${n:-0}" -gt "$$before" ]; then \
	      last=$$(sed -n '/=== make cluster: starting/h; //!H; $${x;p}' $$log); \
	      if echo "$$last" | grep -qE "stcached: "; then echo "node$$i failed to start:"; echo "$$last" | tail -3; exit 1; fi; \
	      if [ $$i = 1 ] || echo "$$last" | grep -qE "joined cluster|existing_state=true"; then \
	        echo "$$last" | grep -q "serving http" && { ok=1; break; }; fi; \
	    fi; \
	    sleep 0.2; \
	  done; \
	  [ -n "$$ok" ] || { echo "node$$i not up after 30s; see $$log"; exit 1; }; \
	  echo "node$$i started: http 127.0.0.1:$$((5999+i)), raft 127.0.0.1:$$((6999+i)), pid $$(cat $(CLUSTER)/node$$i.pid)"; \
	done
	@echo "logs and data in ./$(CLUSTER)/"
	@echo "the lab, live (click a node to crash, restart, freeze or thaw it): http://$(LABADDR)/"
	@echo "node2's own page: http://127.0.0.1:6001/ (browsers refuse port 6000)"
	@echo "try:"
	@echo "  curl '127.0.0.1:6000/set?key=ping&value=pong'"
	@echo "  curl '127.0.0.1:6001/get?key=ping'"
	@echo "  curl 127.0.0.1:6002/status"
	@echo "  curl -X POST $(LABADDR)/lab-api/nodes/node2/crash"
	@echo "stop with: make stop"
	@n=$$(($(N)+1)); [ ! -d $(CLUSTER)/node$$n ] || echo "note: $(CLUSTER)/node$$n is left from a larger make cluster: it is still a member and counts in every majority (make clean starts over)"

# A narrated walkthrough on the make cluster nodes (make cluster runs first and
# starts whatever is not running): the tutorial's section 4, then the lab
# page's lessons, in the page's own steps and words (ui/lessons.json). Each
# step says what to watch on http://127.0.0.1:6080/ and waits for Enter.
# AUTO=1 runs it unattended and checks every step's outcome (cmd/demo's test
# does that on a lab of its own). LESSONS=1,4 walks only those lessons
# (LESSONS= none); TUTORIAL=0 skips the tutorial's part.
LESSONS  ?= all
TUTORIAL ?= 1
demo: cluster
	$(GO) run ./cmd/demo -lab $(LABADDR) -dir $(CLUSTER) -lessons '$(LESSONS)' $(if $(filter 0,$(TUTORIAL)),-tutorial=false) $(if $(filter 1,$(AUTO)),-auto)

# A CA and one certificate per host for -tls-cert/-tls-key/-tls-ca, in ./certs/
# (an existing CA there is reused). HOSTS: the names peers dial, comma-separated;
# a+b is one certificate for both names. E.g. make certs HOSTS=10.0.0.1,10.0.0.2,10.0.0.3
HOSTS ?= 127.0.0.1+localhost
certs:
	$(GO) run ./cmd/certs -dir certs -hosts '$(HOSTS)'

# Load test: a fresh 3-node cluster on random loopback ports and temp dirs,
# every workload for 10 s (see ./stbench -h), e.g. BENCHFLAGS="-duration 2s".
# `make gobench` runs the in-process Go benchmarks of the hot paths once each.
BENCHFLAGS ?=
bench:
	$(GO) build -o $(BIN) . && $(GO) build -o stbench ./cmd/stbench && ./stbench -stcached $(BIN) $(BENCHFLAGS)

# The same load against etcd (3 local members of etcd 3.6, each a process
# of its own, etcd's default settings, its own Go client aimed at the
# leader), for the comparison in docs/performance.md. bench/etcd is a module
# of its own, so etcd and gRPC stay out of stcache's go.mod (and out of
# make test's ./...); the first build downloads and compiles etcd (minutes).
# E.g. ETCDFLAGS="-workloads set1,set64 -duration 4s".
ETCDFLAGS ?=
bench-etcd:
	cd bench/etcd && $(GO) build -o ../../etcdbench . && cd ../.. && ./etcdbench $(ETCDFLAGS)

gobench:
	$(GO) test -run '^$$' -bench . -benchtime 1x .

# Is the working tree slower or faster than REF, beyond the noise? Builds REF
# (in a temporary git worktree) and the working tree, starts a cluster of each
# (stbench -versus) and runs every workload on one then the other, ROUNDS
# times, for each of PAIRS fresh pairs of clusters, and prints per workload the
# median new/old ratio of CPU per request (leader, cluster) and of
# throughput, with the range and a verdict; then the in-process benchmarks
# matching BENCH, COUNT runs per tree, through benchstat. PAIRS=0 skips the
# load, BENCH= the benchmarks; NEW=<commit> compares REF with that commit
# instead of the working tree. See docs/performance.md, "Checking a change".
REF       ?= HEAD~1
PAIRS     ?= 5
ROUNDS    ?= 2
WORKLOADS ?= set64,get64
DURATION  ?= 4s
CLIENT    ?= raw
BENCH     ?= HTTPHandler|Committer|Apply|Cache
COUNT     ?= 10
PERFFLAGS ?=
perfcheck:
	$(GO) run ./cmd/perfcheck -ref '$(REF)' $(if $(NEW),-new '$(NEW)') -pairs $(PAIRS) -rounds $(ROUNDS) -workloads '$(WORKLOADS)' -duration $(DURATION) \
	  -client $(CLIENT) -bench '$(BENCH)' -count $(COUNT) $(PERFFLAGS)

# The long fault test (5 nodes, 10 clients, 5 minutes; make test runs the short one
# with -race). Without -race: faster daemons, more operations and faults per minute.
# STALE=1 reads with consistency=stale and only reports the checker's verdict.
jepsen:
	$(GO) test -run '^TestJepsen$$' -v -count=1 -timeout 30m . -args -jepsen.long $(if $(filter 1,$(STALE)),-jepsen.stale) $(JEPSENFLAGS)

# Stops exactly what `make cluster` started (by the PIDs recorded in ./cluster/):
# the lab supervisor first (so nothing restarts a node meanwhile), then every
# node, frozen ones too (SIGCONT after SIGTERM: a stopped process acts on
# SIGTERM only once it runs).
stop:
	@f=$(CLUSTER)/stlab.pid; if [ -f $$f ]; then p=$$(cat $$f); \
	  if kill -0 $$p 2>/dev/null; then kill -TERM $$p && echo "stopping stlab (pid $$p)"; \
	    for t in $$(seq 1 50); do kill -0 $$p 2>/dev/null || break; sleep 0.1; done; fi; \
	  rm -f $$f; fi
	@for f in $(CLUSTER)/node*.pid; do \
	  [ -f $$f ] || continue; p=$$(cat $$f); n=$$(basename $$f .pid); \
	  if kill -0 $$p 2>/dev/null; then kill -TERM $$p && kill -CONT $$p 2>/dev/null; echo "stopping $$n (pid $$p)"; fi; \
	done
	@for f in $(CLUSTER)/node*.pid; do \
	  [ -f $$f ] || continue; p=$$(cat $$f); \
	  for t in $$(seq 1 100); do kill -0 $$p 2>/dev/null || break; sleep 0.1; done; rm -f $$f; \
	done

clean: stop
	rm -rf $(BIN) $(LAB) $(CLUSTER) stbench etcdbench
