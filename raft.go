package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// applyTimeout bounds how long a write waits to be enqueued and committed
// before the node gives up on it (the write may still happen: a 5xx).
const applyTimeout = 10 * time.Second

// nodeConfig is everything the node needs from the command line.
type nodeConfig struct {
	Name              string
	Dir               string
	HTTPAdvertise     string // what other nodes put in Location headers
	RaftBind          string
	RaftAdvertise     string // the server ID and the address peers dial
	Bootstrap         bool
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	Logger            hclog.Logger
}

// node is one stcache server: the one place that talks to hashicorp/raft.
type node struct {
	cfg       nodeConfig
	log       hclog.Logger
	raft      *raft.Raft
	fsm       *fsm
	cache     *cache
	logStore  *raftboltdb.BoltStore
	stable    *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	commits   *committer
	reads     *verifier

	// writable is the tutorial's write-permission flag, driven by NotifyCh.
	writable atomic.Bool

	// readyTerm is the term in which this node, as leader, has committed and
	// applied a barrier of its own: from then on its map holds every entry
	// committed by earlier leaders, so strong reads may be served.
	readyMu   sync.Mutex
	readyTerm uint64
	readyCh   chan struct{} // closed and replaced when readyTerm changes

	hadState    bool
	stopWatch   chan struct{} // raft never closes NotifyCh, so we stop the watcher
	watcherDone chan struct{}
	shutdown    sync.Once
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
		stopWatch:   make(chan struct{}),
		watcherDone: make(chan struct{}),
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

	openBolt := func(name string) (*raftboltdb.BoltStore, error) {
		path := filepath.Join(cfg.Dir, name)
		// A timeout, because bbolt otherwise waits forever for the file
		// lock that another stcached on the same dir holds.
		s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: locked by another process (is a node already running on %s?)", path, cfg.Dir)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		closers = append(closers, s)
		return s, nil
	}
	if n.logStore, err = openBolt("raft-log.bolt"); err != nil {
		return nil, err
	}
	if n.stable, err = openBolt("raft-stable.bolt"); err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 1, log.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open snapshot store in %s: %w", cfg.Dir, err)
	}

	adv, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
	if err != nil {
		return nil, fmt.Errorf("resolve raft advertise address %s: %w", cfg.RaftAdvertise, err)
	}
	n.transport, err = raft.NewTCPTransportWithLogger(cfg.RaftBind, adv, 3, 10*time.Second, log.Named("transport"))
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", cfg.RaftBind, err)
	}
	closers = append(closers, n.transport)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.RaftAdvertise)
	rc.Logger = log.Named("raft")
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	// Buffered, as the tutorial explains (section 3.9): raft drops nothing
	// on it as long as the watcher keeps reading.
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}

	hasState, err := raft.HasExistingState(n.logStore, n.stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("read existing raft state in %s: %w", cfg.Dir, err)
	}
	n.hadState = hasState
	n.raft, err = raft.NewRaft(rc, n.fsm, n.logStore, n.stable, snaps, n.transport)
	if err != nil {
		return nil, fmt.Errorf("start raft (data dir %s): %w", cfg.Dir, err)
	}
	closers = append(closers, closerFunc(func() error { return n.raft.Shutdown().Error() }))

	if cfg.Bootstrap {
		boot := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: n.transport.LocalAddr(),
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

	n.commits = newCommitter(n.applyEntry)
	n.reads = &verifier{verify: func() error { return n.raft.VerifyLeader().Error() }}
	go n.watchLeadership(notify)
	return n, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// HadState reports whether this node's data dir held Raft state at start.
func (n *node) HadState() bool { return n.hadState }

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
	for n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term {
		err := n.raft.Barrier(applyTimeout).Error()
		if err == nil {
			break
		}
		n.log.Warn("new-term barrier failed", "term", term, "error", err)
		if errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return
		}
	}
	if n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
		return
	}
	n.setReady(term)
	// Record our own HTTP address, so followers can send clients here.
	if n.fsm.peerHTTP(n.cfg.RaftAdvertise) != n.cfg.HTTPAdvertise {
		if err := n.write(command{op: opSetPeer, key: n.cfg.RaftAdvertise, value: n.cfg.HTTPAdvertise}); err != nil {
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

// refuse builds the refusal for a request this node will not execute.
func (n *node) refuse() error {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" || string(addr) == n.cfg.RaftAdvertise {
		// No leader, or raft says we lead but the write permission has not
		// caught up yet: either way, try again shortly.
		return &refusal{}
	}
	return &refusal{LeaderHTTP: n.fsm.peerHTTP(string(addr))}
}

// applyEntry is the committer's way into Raft: one entry, committed and
// applied here, or an error.
func (n *node) applyEntry(data []byte) error {
	f := n.raft.Apply(data, applyTimeout)
	if err := f.Error(); err != nil {
		return err
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// write replicates cmd through the group committer. A refusal means it was
// not executed; any other error means it may or may not have been.
func (n *node) write(cmd command) error {
	if !n.writable.Load() {
		return n.refuse()
	}
	err := n.commits.submit(cmd)
	switch {
	case err == nil:
		return nil
	case notExecuted(err):
		return n.refuse()
	default:
		return fmt.Errorf("raft apply: %w", err)
	}
}

// notExecuted reports whether raft rejected an operation before it reached
// the log, so that it certainly did not happen and may be refused cleanly.
func notExecuted(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// Set stores value under key on every node.
func (n *node) Set(key, value string) error {
	return n.write(command{op: opSet, key: key, value: value})
}

// Delete removes key on every node.
func (n *node) Delete(key string) error {
	return n.write(command{op: opDelete, key: key})
}

// Get reads key. A stale read answers from this node's map, which may lag.
// A strong read is linearizable: only the leader serves it, after its
// new-term barrier is applied and after a quorum confirmed its leadership in
// a round that started after this call.
func (n *node) Get(key string, strong bool) (string, bool, error) {
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
		}
		if !n.writable.Load() {
			return n.refuse()
		}
	}
	if err := n.reads.wait(); err != nil {
		if notExecuted(err) || errors.Is(err, raft.ErrLeadershipLost) {
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

// Join adds raftAddr as a voter (if it is not one already) and records its
// HTTP address. Idempotent: joining again changes nothing.
func (n *node) Join(raftAddr, httpAddr string) error {
	if !n.writable.Load() {
		return n.refuse()
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("get configuration: %w", err)
	}
	id, addr := raft.ServerID(raftAddr), raft.ServerAddress(raftAddr)
	member := false
	for _, s := range cf.Configuration().Servers {
		switch {
		case s.ID == id && s.Address == addr && s.Suffrage == raft.Voter:
			member = true
		case s.ID != id && s.Address == addr:
			// Same address under another ID: a node that was rebuilt.
			// Remove the old entry or the cluster counts a ghost voter.
			if err := n.await(n.raft.RemoveServer(s.ID, 0, 0)); err != nil {
				return n.raftErr("remove stale server "+string(s.ID), err)
			}
		}
	}
	if !member {
		// A voter nothing listens on would count towards the quorum and
		// could stall a small cluster: refuse it up front.
		conn, err := net.DialTimeout("tcp", raftAddr, 2*time.Second)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errUnreachablePeer, raftAddr, err)
		}
		conn.Close()
		if err := n.await(n.raft.AddVoter(id, addr, 0, 0)); err != nil {
			return n.raftErr("add voter "+raftAddr, err)
		}
		n.log.Info("added voter", "id", raftAddr, "http", httpAddr)
	}
	if httpAddr != "" && n.fsm.peerHTTP(raftAddr) != httpAddr {
		return n.write(command{op: opSetPeer, key: raftAddr, value: httpAddr})
	}
	return nil
}

// Leave removes raftAddr from the cluster; removing a non-member is ok.
func (n *node) Leave(raftAddr string) error {
	if !n.writable.Load() {
		return n.refuse()
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("get configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == raft.ServerID(raftAddr) {
			if err := n.await(n.raft.RemoveServer(s.ID, 0, 0)); err != nil {
				return n.raftErr("remove server "+raftAddr, err)
			}
			n.log.Info("removed server", "id", raftAddr)
		}
	}
	if n.fsm.peerHTTP(raftAddr) == "" {
		return nil
	}
	if err := n.write(command{op: opDeletePeer, key: raftAddr}); err != nil {
		// The server is gone; a stale HTTP address for it is harmless
		// (only the current leader's is ever used).
		n.log.Warn("could not forget http address of removed server", "id", raftAddr, "error", err)
	}
	return nil
}

// await waits for a membership future, bounded so an HTTP request does not
// hang: the change may still complete after the timeout.
func (n *node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-time.After(applyTimeout):
		return errors.New("timed out waiting for the configuration change to commit (it may still happen)")
	}
}

func (n *node) raftErr(what string, err error) error {
	if notExecuted(err) {
		return n.refuse()
	}
	return fmt.Errorf("%s: %w", what, err)
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
}

type server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	HTTP     string `json:"http,omitempty"`
}

// Status reports this node's view of the cluster.
func (n *node) Status() status {
	leader, _ := n.raft.LeaderWithID()
	st := status{
		Node:         n.cfg.Name,
		HTTP:         n.cfg.HTTPAdvertise,
		Raft:         n.cfg.RaftAdvertise,
		State:        n.raft.State().String(),
		Leader:       string(leader),
		LeaderHTTP:   n.fsm.peerHTTP(string(leader)),
		Term:         n.raft.CurrentTerm(),
		LastLogIndex: n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		Servers:      []server{},
		Writable:     n.writable.Load(),
		Keys:         n.cache.Len(),
	}
	var snapIdx uint64
	if _, err := fmt.Sscan(n.raft.Stats()["last_snapshot_index"], &snapIdx); err == nil {
		st.LastSnapshotIndex = snapIdx
	}
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			st.Servers = append(st.Servers, server{
				ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String(),
				HTTP: n.fsm.peerHTTP(string(s.ID)),
			})
		}
	}
	return st
}

// Shutdown stops the node: a leader first hands leadership to an up-to-date
// follower, so the cluster does not wait out an election timeout; then Raft
// stops and the stores close. Safe to call more than once.
func (n *node) Shutdown() error {
	var errs []error
	n.shutdown.Do(func() {
		if n.raft.State() == raft.Leader && n.voters() > 1 {
			n.log.Info("handing leadership over before stopping")
			if err := n.await(n.raft.LeadershipTransfer()); err != nil {
				n.log.Warn("leadership transfer failed; stopping anyway", "error", err)
			}
		}
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		n.commits.close()
		close(n.stopWatch)
		<-n.watcherDone
		if err := n.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close log store: %w", err))
		}
		if err := n.stable.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close stable store: %w", err))
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

// joinCluster asks the member at joinAddr (any member: a follower redirects
// to the leader) to add this node, retrying with backoff until ctx ends.
func joinCluster(ctx context.Context, log hclog.Logger, joinAddr, raftAddr, httpAddr string) error {
	u := "http://" + joinAddr + "/join?" + url.Values{"peerAddress": {raftAddr}, "httpAddress": {httpAddr}}.Encode()
	client := &http.Client{Timeout: applyTimeout + 5*time.Second}
	backoff := 100 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("join via %s: %w", joinAddr, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode == http.StatusOK && string(body) == "ok":
				log.Info("joined cluster", "via", joinAddr, "attempts", attempt)
				return nil
			case resp.StatusCode == http.StatusBadRequest:
				// Retrying will not fix a request the cluster calls malformed.
				return fmt.Errorf("join via %s refused: %s", joinAddr, strings.TrimSpace(string(body)))
			default:
				err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
		}
		last = err
		log.Debug("join attempt failed", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join via %s: gave up after %d attempts: %w", joinAddr, attempt, last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
