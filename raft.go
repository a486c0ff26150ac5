package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// applyTimeout bounds how long a write waits to be enqueued, and then to be
// committed, before the node gives up on it (the write may still happen: a
// 5xx).
const applyTimeout = 10 * time.Second

// logCacheEntries is how many of the latest log entries raft keeps in memory
// to send to followers without reading them back from the log store. Raft
// sends an entry within moments of storing it, so a few suffice; the bound
// is on memory, since an entry may be up to maxBatchBytes.
const logCacheEntries = 16

// nodeConfig is everything the node needs from the command line.
type nodeConfig struct {
	Name              string
	Dir               string
	HTTPAdvertise     string // what other nodes put in Location headers
	RaftBind          string
	RaftAdvertise     string // the server ID and the address peers dial
	Bootstrap         bool
	JoinVia           string    // -join: the member a new node asks to add it, or ""
	TLS               *tlsSetup // nil: plain TCP and HTTP
	Peers             *joiner   // how to ask other members over HTTP (scheme, TLS, token); nil: never
	MaxMemory         int64     // the cap on bytes of keys and values this node puts in its entries as leader; 0: none
	OnBatch           func(int) // hears the writes per Raft entry (metrics), or nil
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64 // log entries kept behind a snapshot
	LogStore          string // storeBolt or storeWAL (store.go)
	WALSegmentSize    int    // bytes per raft-wal segment file
	Lab               bool   // serve /lab/: link faults set over HTTP (lab.go)
	Logger            hclog.Logger
}

// node is one stcache server: the one place that talks to hashicorp/raft.
type node struct {
	cfg      nodeConfig
	log      hclog.Logger
	raft     *raft.Raft
	fsm      *fsm
	cache    *cache
	logStore raft.LogStore
	raftLog  *truncWatchStore // logStore as raft writes it: reports truncations (log.go)
	logCache *raft.LogCache   // raftLog with its last entries in memory, as raft reads it
	stable   raft.StableStore
	// closeStores closes logStore and stable (store.go), after Raft stops.
	closeStores func() error
	stream      *streamLayer
	transport   *raft.NetworkTransport
	commits     *committer
	reads       *verifier
	events      *hub // what /events streams (events.go, observe.go)
	lab         *lab // nil without -lab

	// writable is the tutorial's write-permission flag, driven by NotifyCh.
	writable atomic.Bool

	// inFlight is the growth of the map that admitted writes not yet
	// answered will bring, counted against MaxMemory (bounds.go).
	inFlight atomic.Int64

	// readyTerm is the term in which this node, as leader, has committed and
	// applied a barrier of its own: from then on its map holds every entry
	// committed by earlier leaders, so strong reads may be served.
	readyMu   sync.Mutex
	readyTerm uint64
	readyCh   chan struct{} // closed and replaced when readyTerm changes

	// vouch caches vouchedPeers' last answer.
	vouch struct {
		sync.Mutex
		at    time.Time
		addrs []string
	}

	// removed is set while this node is not a member (after a /leave of
	// it; see membership.go): it then refuses every request but /status.
	removed      atomic.Bool
	members      *membership     // decides removed
	committedCfg committedConfig // the last configuration known committed
	contacts     contacts        // on a leader: which followers it hears from

	hadState bool
	// stopping is closed when shutdown begins: every wait on Raft selects
	// on it, because Raft may never answer a request pending at its
	// shutdown.
	stopping    chan struct{}
	stopOnce    sync.Once
	stopWatch   chan struct{} // raft never closes NotifyCh, so we stop the watchers
	watcherDone chan struct{}
	membersDone chan struct{}
	// raftGone is closed by watchMembership once raft has stopped by
	// itself (a leader that committed its own removal).
	raftGone   chan struct{}
	eventsDone chan struct{}
	reaperDone chan struct{}
	shutdown   sync.Once
}

// refusal is the answer of a node that cannot take a request because it does
// not lead. The request was not executed. LeaderHTTP is the leader's HTTP
// address when this node knows it.
type refusal struct{ LeaderHTTP string }

func (r *refusal) Error() string {
	if r.LeaderHTTP == "" {
		return "not the leader, and no leader known"
	}
	return "not the leader; leader is " + r.LeaderHTTP
}

// errUnreachablePeer: a join named a Raft address nothing listens on.
var errUnreachablePeer = errors.New("peer unreachable")

// openNode opens the stores, the transport and Raft, bootstraps if asked, and
// starts the leadership watcher. On error everything opened is closed again.
func openNode(cfg nodeConfig) (n *node, err error) {
	log := cfg.Logger
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.Dir, err)
	}
	n = &node{
		cfg:         cfg,
		log:         log.Named("node"),
		cache:       newCache(),
		readyCh:     make(chan struct{}),
		stopping:    make(chan struct{}),
		stopWatch:   make(chan struct{}),
		watcherDone: make(chan struct{}),
		membersDone: make(chan struct{}),
		raftGone:    make(chan struct{}),
		eventsDone:  make(chan struct{}),
		reaperDone:  make(chan struct{}),
		events:      newHub(cfg.RaftAdvertise),
	}
	n.fsm = newFSM(n.cache, log.Named("fsm"))
	var closers []io.Closer
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i].Close() // already failing; the first error is the one to report
			}
		}
	}()

	st, err := openStores(cfg.LogStore, cfg.Dir, cfg.WALSegmentSize, log)
	if err != nil {
		return nil, err
	}
	closers = append(closers, closerFunc(st.close))
	n.logStore, n.stable, n.closeStores = st.log, st.stable, st.close
	n.raftLog = &truncWatchStore{LogStore: n.logStore, truncated: n.truncated}
	if err := checkSnapshots(cfg.Dir); err != nil {
		return nil, err
	}
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 1, log.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open snapshot store in %s: %w", cfg.Dir, err)
	}
	// A failed snapshot must not leave its partial files behind (snapshot.go).
	snaps := &tidySnapshotStore{SnapshotStore: fileSnaps, dir: filepath.Join(cfg.Dir, "snapshots")}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.RaftAdvertise)
	rc.Logger = log.Named("raft")
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	// -trailing-logs, raft's 10240 unless set: how far a follower may lag
	// and still catch up from the log rather than from a snapshot. Lower
	// values bound the log on disk; crash_test.go uses 16 to make raft
	// send a snapshot (InstallSnapshot) within seconds.
	rc.TrailingLogs = cfg.TrailingLogs
	// Per-peer metrics as labels only: the legacy form also puts each
	// peer's address into a metric name (one family per peer on /metrics).
	rc.NoLegacyTelemetry = true
	// Buffered, as the tutorial explains (section 3.9): raft drops nothing
	// on it as long as the watcher keeps reading.
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}

	hasState, err := raft.HasExistingState(n.raftLog, n.stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("read existing raft state in %s: %w", cfg.Dir, err)
	}
	n.hadState = hasState

	// The advertised name is checked once here, so a typo fails at start;
	// it is used as given from then on, and resolved at every dial.
	if _, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err != nil {
		return nil, fmt.Errorf("resolve raft advertise address %s: %w", cfg.RaftAdvertise, err)
	}
	// A node with no state that is about to join keeps its Raft port shut
	// until the leader has forgotten any earlier incarnation (joinCluster).
	n.stream, err = listenRaft(cfg.RaftBind, cfg.RaftAdvertise, cfg.JoinVia != "" && !hasState, cfg.TLS, log.Named("transport"))
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", cfg.RaftBind, err)
	}
	if cfg.Lab {
		n.lab = newLab(cfg.RaftAdvertise, n.Members, n.events, log.Named("lab"))
	}
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.lab.stream(n.stream), MaxPool: 3, Timeout: 10 * time.Second, Logger: log.Named("transport"),
	})
	closers = append(closers, n.transport)
	// Wrapped so that the node knows which configuration is committed
	// (membership.go); the FSM itself is unchanged.
	// Raft reads back every entry it sends to a follower, just after storing
	// it: without a cache each read is a BoltDB transaction and a msgpack
	// decode, 3% of the leader's CPU at set64 (issue 20). The cache keeps
	// the last logCacheEntries entries as stored: usually well under 1 MiB
	// (an entry is a group commit, ~7 KB at 64 writers), at most
	// logCacheEntries × maxBatchBytes with the largest values.
	n.logCache, err = raft.NewLogCache(logCacheEntries, n.raftLog)
	if err != nil {
		return nil, fmt.Errorf("log cache: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, configFSM{n.fsm, &n.committedCfg}, n.logCache, n.stable,
		configSnapshots{snaps, &n.committedCfg}, n.transport)
	if err != nil {
		return nil, fmt.Errorf("start raft (data dir %s): %w", cfg.Dir, err)
	}
	closers = append(closers, closerFunc(func() error { return n.raft.Shutdown().Error() }))
	// With mutual TLS, whose certificates may reach Raft (transport.go).
	n.stream.setPeers(raftPeers{members: n.raftMembers, vouched: n.vouchedPeers})

	if cfg.Bootstrap {
		// The address as given, like the ID: never a resolved IP.
		boot := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(cfg.RaftAdvertise),
		}}}
		err := n.raft.BootstrapCluster(boot).Error()
		switch {
		case errors.Is(err, raft.ErrCantBootstrap):
			n.log.Info("data dir already holds raft state; -bootstrap ignored", "dir", cfg.Dir)
		case err != nil:
			return nil, fmt.Errorf("bootstrap cluster: %w", err)
		}
	}
	n.log.Info("node started", "id", rc.LocalID, "dir", cfg.Dir, "existing_state", hasState)

	// Before anything is served: a removed node restarted must not serve
	// stale reads as a member.
	n.members = &membership{self: cfg.RaftAdvertise, hadState: hasState}
	n.firstMembership()

	n.commits = newCommitter(n.applyEntry)
	n.commits.onBatch = cfg.OnBatch
	n.commits.maxBytes = cfg.MaxMemory
	n.reads = &verifier{verify: func() error { return n.raft.VerifyLeader().Error() }}
	go n.watchLeadership(notify)
	go n.watchMembership()
	go n.watchEvents(n.events)
	go n.reapExpired()
	return n, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// Events is the hub of this node's event stream.
func (n *node) Events() *hub { return n.events }

// Lab is this node's link faults, or nil when it runs without -lab.
func (n *node) Lab() *lab { return n.lab }

// TransferLeadership hands leadership to the member with server ID to: the
// leader tells it to start an election at once (raft's TimeoutNow), the
// lab's "time out this node now". A non-leader refuses, as for a write.
func (n *node) TransferLeadership(to string) error {
	if n.removed.Load() {
		return errNotMember
	}
	if !n.writable.Load() {
		return n.refuse()
	}
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	m, ok := findMemberByID(servers, to)
	if !ok || to == n.cfg.RaftAdvertise {
		return errNotPeer
	}
	if err := n.raft.LeadershipTransferToServer(m.ID, m.Address).Error(); err != nil {
		return n.raftErr("leadership transfer to "+to, err)
	}
	return nil
}

// SnapshotNow asks raft for a snapshot at once (a user snapshot), instead
// of waiting for -snapshot-interval. Nothing new since the last one is not
// an error: it reports false.
func (n *node) SnapshotNow() (bool, error) {
	err := n.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("snapshot: %w", err)
	}
	return true, nil
}

// HadState reports whether this node's data dir held Raft state at start.
func (n *node) HadState() bool { return n.hadState }

// OpenRaft lets Raft connections in (a node with no state that joins starts
// with its Raft port shut: see joinCluster).
func (n *node) OpenRaft() { n.stream.Open() }

// raftMembers returns the Raft addresses of this node's latest
// configuration (raft keeps it in memory: cheap).
func (n *node) raftMembers() []string {
	servers, err := n.configuration()
	if err != nil {
		return nil
	}
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = string(s.Address)
	}
	return addrs
}

// vouchedPeers returns the Raft addresses in another member's configuration,
// as its /status lists them. With mutual TLS the stream layer asks for them
// when a certificate names no host of this node's own configuration, which
// may be out of date: this node was cut off while a server joined that now
// leads, or it is new and waits for its first entries. It asks the members
// whose HTTP address it knows, else the member it joins through (-join), and
// believes the first that answers as a member; at most once a second, so a
// stranger knocking cannot make it ask more often.
func (n *node) vouchedPeers() []string {
	n.vouch.Lock()
	defer n.vouch.Unlock()
	if n.cfg.Peers == nil || time.Since(n.vouch.at) < time.Second {
		return n.vouch.addrs
	}
	n.vouch.at, n.vouch.addrs = time.Now(), nil
	var ask []string
	if servers, err := n.configuration(); err == nil {
		for _, s := range servers {
			if h := n.fsm.peerHTTP(string(s.ID)); h != "" && string(s.ID) != n.cfg.RaftAdvertise {
				ask = append(ask, h)
			}
		}
	}
	if n.cfg.JoinVia != "" {
		ask = append(ask, n.cfg.JoinVia)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, h := range ask {
		st, err := n.cfg.Peers.status(ctx, h)
		if err != nil || !st.Member {
			continue
		}
		for _, s := range st.Servers {
			n.vouch.addrs = append(n.vouch.addrs, s.Address)
		}
		break
	}
	return n.vouch.addrs
}

// watchLeadership flips the write permission as leadership comes and goes
// (tutorial section 3.9) and, on winning, commits a barrier so strong reads
// start only once every earlier entry is applied here.
func (n *node) watchLeadership(notify <-chan bool) {
	defer close(n.watcherDone)
	for {
		var isLeader bool
		select {
		case isLeader = <-notify:
		case <-n.stopWatch:
			return
		}
		if isLeader {
			n.writable.Store(true)
			n.log.Info("become leader, enable write api")
			go n.afterElection(n.raft.CurrentTerm())
		} else {
			n.writable.Store(false)
			n.setReady(0)
			n.log.Info("become follower, close write api")
		}
	}
}

func (n *node) afterElection(term uint64) {
	leading := func() bool { return n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term }
	barrier := func() error { return n.waitFuture(n.raft.Barrier(applyTimeout), nil) }
	pause := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-n.stopping:
			return false
		}
	}
	if err := retryBarrier(barrier, leading, pause); err != nil {
		n.log.Warn("new-term barrier failed; strong reads wait for the next term", "term", term, "error", err)
		return
	}
	if !leading() {
		return
	}
	n.setReady(term)
	// Record our own HTTP address, so followers can send clients here.
	if n.fsm.peerHTTP(n.cfg.RaftAdvertise) != n.cfg.HTTPAdvertise {
		if _, err := n.write(command{op: opSetPeer, key: n.cfg.RaftAdvertise, value: n.cfg.HTTPAdvertise}); err != nil {
			n.log.Warn("could not record own http address", "error", err)
		}
	}
}

func (n *node) setReady(term uint64) {
	n.readyMu.Lock()
	if n.readyTerm != term {
		n.readyTerm = term
		close(n.readyCh)
		n.readyCh = make(chan struct{})
	}
	n.readyMu.Unlock()
}

// ready reports whether this node has applied its own barrier in the
// current term, and otherwise returns a channel that changes hands when
// that may have changed.
func (n *node) ready() (bool, <-chan struct{}) {
	n.readyMu.Lock()
	defer n.readyMu.Unlock()
	t := n.readyTerm
	return t != 0 && t == n.raft.CurrentTerm(), n.readyCh
}

// retryBarrier commits the new term's barrier, retrying while this node
// still leads the term. Raft refuses a barrier at once while a leadership
// transfer is in progress, so without the growing pause (10 ms doubling to
// 1 s) this loop spun a core. pause returns false when the node stops.
func retryBarrier(barrier func() error, leading func() bool, pause func(time.Duration) bool) error {
	wait := 10 * time.Millisecond
	for {
		if !leading() {
			return nil
		}
		err := barrier()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrNotLeader) ||
			errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, errStopping):
			return err
		}
		if !pause(wait) {
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

// leaderID is the leader's server ID as this node knows it, or "". Always
// the ID, never the transport's address: with a resolved address a name
// given as -raft matched nothing (the peers map is keyed by ID).
func (n *node) leaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// refuse builds the refusal for a request this node will not execute.
func (n *node) refuse() error {
	id := n.leaderID()
	if id == "" || id == n.cfg.RaftAdvertise {
		// No leader, or raft says we lead but the write permission has not
		// caught up yet: either way, try again shortly.
		return &refusal{}
	}
	return &refusal{LeaderHTTP: n.fsm.peerHTTP(id)}
}

// waitFuture waits for a Raft future, but not past the node's shutdown
// (Raft may never answer a request queued when it stopped) nor past
// timeout if it is not nil.
func (n *node) waitFuture(f raft.Future, timeout <-chan time.Time) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.stopping:
		// A future answered just as the node stops is still an answer.
		select {
		case err := <-done:
			return err
		default:
			return errStopping
		}
	case <-timeout:
		return errors.New("timed out waiting for raft (the change may still happen)")
	}
}

// applyEntry is the committer's way into Raft: one entry, committed and
// applied here, and its log index and the writes Apply refused for the cap,
// or an error.
func (n *node) applyEntry(data []byte) (uint64, []int, error) {
	// Apply's own timeout bounds only the wait to enqueue: a leader whose
	// followers cannot store the entry (their disks are full) keeps it
	// uncommitted for as long as it leads, so the wait for the commit is
	// bounded here (TestFullDisk), and the writers get a 5xx (the entry
	// may still commit later).
	timer := time.NewTimer(applyTimeout)
	defer timer.Stop()
	f := n.raft.Apply(data, applyTimeout)
	switch err := n.waitFuture(f, timer.C); {
	case errors.Is(err, errStopping):
		// The entry is with Raft: not a refusal, an unknown outcome.
		return 0, nil, errAbandoned
	case err != nil:
		return 0, nil, err
	}
	switch r := f.Response().(type) {
	case error:
		return 0, nil, r
	case capRefusals:
		return f.Index(), r, nil
	}
	return f.Index(), nil, nil
}

// write replicates cmd through the group committer and returns the index of
// the log entry that carried it. A refusal means it was not executed; any
// other error means it may or may not have been.
func (n *node) write(cmd command) (uint64, error) {
	if n.removed.Load() {
		return 0, errNotMember
	}
	if !n.writable.Load() {
		return 0, n.refuse()
	}
	held, err := n.reserve(cmd)
	if err != nil {
		return 0, err
	}
	defer n.inFlight.Add(-held)
	index, err := n.commits.submit(cmd)
	switch {
	case err == nil:
		return index, nil
	case errors.Is(err, errCacheFull): // refused by Apply: nothing changed
		return 0, err
	case notExecuted(err) || errors.Is(err, errStopping):
		return 0, n.refuse()
	default:
		return 0, fmt.Errorf("raft apply: %w", err)
	}
}

// notExecuted reports whether raft rejected an operation before it reached
// the log, so that it certainly did not happen and may be refused cleanly.
func notExecuted(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// Set stores value under key on every node; it returns the index of the log
// entry that carried the write. A ttl > 0 makes the key expire that long
// from now by this leader's clock; the deadline goes into the log entry.
func (n *node) Set(key, value string, ttl time.Duration) (uint64, error) {
	cmd := command{op: opSet, key: key, value: value}
	if ttl > 0 {
		cmd.op, cmd.deadline = opSetTTL, deadlineAfter(ttl)
	}
	return n.write(cmd)
}

// Delete removes key on every node, like Set.
func (n *node) Delete(key string) (uint64, error) {
	return n.write(command{op: opDelete, key: key})
}

// Get reads key. A stale read answers from this node's map, which may lag.
// A strong read is linearizable: only the leader serves it, after its
// new-term barrier is applied and after a quorum confirmed its leadership in
// a round that started after this call.
func (n *node) Get(key string, strong bool) (string, bool, error) {
	if n.removed.Load() {
		return "", false, errNotMember
	}
	if strong {
		if err := n.confirmLeadership(); err != nil {
			return "", false, err
		}
	}
	v, ok := n.cache.Get(key)
	return v, ok, nil
}

func (n *node) confirmLeadership() error {
	if !n.writable.Load() {
		return n.refuse()
	}
	timer := time.NewTimer(applyTimeout)
	defer timer.Stop()
	for {
		ok, changed := n.ready()
		if ok {
			break
		}
		select {
		case <-changed:
		case <-timer.C:
			return n.refuse()
		case <-n.stopping:
			return n.refuse()
		}
		if !n.writable.Load() {
			return n.refuse()
		}
	}
	if err := n.reads.wait(n.stopping); err != nil {
		if notExecuted(err) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, errStopping) {
			return n.refuse() // a read that is not answered changes nothing
		}
		return fmt.Errorf("verify leadership: %w", err)
	}
	// Leadership may have been lost and won again during the round: the
	// read is safe only if the barrier of the term we are in now is applied.
	if ok, _ := n.ready(); !ok {
		return n.refuse()
	}
	return nil
}

// status is what /status shows.
type status struct {
	Node              string   `json:"node"`
	HTTP              string   `json:"http"`
	Raft              string   `json:"raft"`
	State             string   `json:"state"`
	Leader            string   `json:"leader"`
	LeaderHTTP        string   `json:"leader_http"`
	Term              uint64   `json:"term"`
	LastLogIndex      uint64   `json:"last_log_index"`
	CommitIndex       uint64   `json:"commit_index"`
	AppliedIndex      uint64   `json:"applied_index"`
	LastSnapshotIndex uint64   `json:"last_snapshot_index"`
	Servers           []server `json:"servers"`
	Writable          bool     `json:"writable"`
	Keys              int      `json:"keys"`
	Bytes             int64    `json:"bytes"`  // keys plus values held now
	Member            bool     `json:"member"` // false once this node was removed
	// ConfigurationCommitted: servers is the last configuration known
	// committed here (not a change in flight), so a node it lacks is out
	// (membership.go).
	ConfigurationCommitted bool `json:"configuration_committed"`

	// Lab is only there with -lab: this node's link faults.
	Lab *labStatus `json:"lab,omitempty"`
}

type server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	HTTP     string `json:"http,omitempty"`
}

// appliedIndex is the index up to which this node's map holds every entry:
// the FSM's own figure (fsm.applied), carried over the entries raft never
// hands an FSM (a new leader's no-op, a barrier) as far as raft's
// AppliedIndex. raft's figure alone runs ahead of the map, by the entries
// queued for the FSM's goroutine: a client that waited for applied_index
// to reach its write's X-Raft-Index could still read the old value.
func (n *node) appliedIndex() uint64 {
	i, last := n.fsm.applied.Load(), n.raft.AppliedIndex()
	// The next entries are in the log cache or, just after a restart, a
	// read each; usually there are none (idle) or the first is a command.
	for end := min(last, i+64); i < end; i++ {
		var e raft.Log
		if err := n.logCache.GetLog(i+1, &e); err != nil ||
			e.Type == raft.LogCommand || e.Type == raft.LogConfiguration {
			break // the FSM's: not taken in yet (or unreadable: say less)
		}
	}
	return i
}

// Status reports this node's view of the cluster.
func (n *node) Status() status {
	leader := n.leaderID()
	st := status{
		Node:         n.cfg.Name,
		HTTP:         n.cfg.HTTPAdvertise,
		Raft:         n.cfg.RaftAdvertise,
		State:        n.raft.State().String(),
		Leader:       leader,
		LeaderHTTP:   n.fsm.peerHTTP(leader),
		Term:         n.raft.CurrentTerm(),
		LastLogIndex: n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.appliedIndex(),
		Servers:      []server{},
		Writable:     n.writable.Load() && !n.removed.Load(),
		Keys:         n.cache.Len(),
		Bytes:        n.cache.Bytes(),
		Member:       !n.removed.Load(),
	}
	var snapIdx uint64
	if _, err := fmt.Sscan(n.raft.Stats()["last_snapshot_index"], &snapIdx); err == nil {
		st.LastSnapshotIndex = snapIdx
	}
	st.Servers = n.Members()
	st.ConfigurationCommitted = n.configurationCommitted(st.Servers)
	if n.lab != nil {
		st.Lab = n.lab.status()
	}
	return st
}

// Members is the Raft configuration this node knows (it may include an
// uncommitted change), with each member's HTTP address where known.
func (n *node) Members() []server {
	servers := []server{}
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			servers = append(servers, server{
				ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String(),
				HTTP: n.fsm.peerHTTP(string(s.ID)),
			})
		}
	}
	return servers
}

// BeginShutdown makes every request waiting on Raft (a strong read's
// leadership check, a membership change) give up at once, so the HTTP server
// can drain before Raft stops. Writes already queued still complete.
func (n *node) BeginShutdown() {
	n.stopOnce.Do(func() { close(n.stopping) })
}

// Shutdown stops the node: a leader first hands leadership to an up-to-date
// follower, so the cluster does not wait out an election timeout; then Raft
// stops and the stores close. Every wait is bounded, so it returns even if
// Raft leaves a request unanswered. Safe to call more than once.
func (n *node) Shutdown() error {
	var errs []error
	n.shutdown.Do(func() {
		n.BeginShutdown()
		if n.raft.State() == raft.Leader && n.voters() > 1 && !n.removed.Load() {
			n.log.Info("handing leadership over before stopping")
			f := n.raft.LeadershipTransfer()
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			select {
			case err := <-done:
				if err != nil {
					n.log.Warn("leadership transfer failed; stopping anyway", "error", err)
				}
			case <-time.After(applyTimeout):
				n.log.Warn("leadership transfer did not finish in time; stopping anyway")
			}
		}
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		n.commits.close()
		close(n.stopWatch)
		<-n.watcherDone
		<-n.membersDone
		<-n.eventsDone
		<-n.reaperDone
		if err := n.closeStores(); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

func (n *node) voters() int {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	v := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}
