package main

// Membership: who is in the cluster, how a node joins and leaves, and what
// a node does once it is no longer a member. Identity is the server ID, which
// is the advertised Raft address exactly as given; two spellings of one
// endpoint ("localhost:7000", "127.0.0.1:7000") are one member.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// errNotMember: this node was removed from the cluster and serves nothing
// but /status.
var errNotMember = errors.New("not a member")

// conflict is a join the leader will not carry out as asked (409): doing it
// would remove a live member, or send clients to an HTTP address that does
// not answer as the server it is recorded for.
type conflict struct{ msg string }

func (c *conflict) Error() string { return c.msg }

// findMember returns the configuration entry for raftAddr: the one with that
// server ID, else one whose address is the same endpoint spelt another way.
func findMember(servers []raft.Server, raftAddr string) (raft.Server, bool) {
	for _, s := range servers {
		if s.ID == raft.ServerID(raftAddr) {
			return s, true
		}
	}
	for _, s := range servers {
		if sameEndpoint(string(s.Address), raftAddr) {
			return s, true
		}
	}
	return raft.Server{}, false
}

func (n *node) configuration() ([]raft.Server, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("get configuration: %w", err)
	}
	return cf.Configuration().Servers, nil
}

// leaderConfiguration is the configuration a membership change starts
// from, or why this node may not change it: not a member, or not the leader.
func (n *node) leaderConfiguration() ([]raft.Server, error) {
	if n.removed.Load() {
		return nil, errNotMember
	}
	if !n.writable.Load() {
		return nil, n.refuse()
	}
	return n.configuration()
}

// Join adds raftAddr as a voter and records its HTTP address. It returns the
// index of the last log entry it wrote (0: nothing to write).
//
// Joining is idempotent: a voter with that ID, or a member at the same
// endpoint under another spelling, is left alone. fresh is a node's word that
// it restarted with no state (its data dir is new or wiped): then any entry
// for its endpoint is an earlier incarnation whose vote history is gone, and
// the leader removes it (and does only that: the node then opens its Raft
// port and joins again, plainly). Removing this leader itself is refused.
func (n *node) Join(raftAddr, httpAddr string, fresh bool) (uint64, error) {
	defer n.stream.expect(raftAddr)() // with TLS, its Raft connections are admitted meanwhile
	servers, err := n.leaderConfiguration()
	if err != nil {
		return 0, err
	}
	old, found := findMember(servers, raftAddr)
	if fresh {
		if !found {
			return 0, nil
		}
		if string(old.ID) == n.cfg.RaftAdvertise {
			return 0, &conflict{fmt.Sprintf("conflict: %s is this leader's own address; a node with no state cannot take its place", raftAddr)}
		}
		// A member this leader still hears from is running: the request
		// cannot come from its successor at that address, and granting it
		// would evict a live member. A successor retries the 409: its
		// predecessor may have died a moment ago.
		if n.contacts.heardWithin(old.ID, aliveWindow) {
			return 0, &conflict{fmt.Sprintf("conflict: %s is alive", old.ID)}
		}
		// Something must answer there (with TLS: prove a certificate of
		// our CA for that name) before a member is removed for it.
		if err := n.stream.probe(raftAddr); err != nil {
			return 0, fmt.Errorf("%w: %s: %v", errUnreachablePeer, raftAddr, err)
		}
		index, err := n.changeMembers(n.raft.RemoveServer(old.ID, 0, 0))
		if err != nil {
			return 0, n.raftErr("remove earlier incarnation "+string(old.ID), err)
		}
		n.log.Info("removed the earlier incarnation of a node that restarted with no state", "id", old.ID, "index", index)
		return index, nil
	}
	// Every node sends its clients to the leader's recorded HTTP address:
	// one given here, for a new server or in place of the one recorded, must
	// answer as that server first, or anyone who can reach /join could send
	// every redirected write (and its token) elsewhere. A node that re-joins
	// with the address already recorded costs nothing.
	if httpAddr != "" && (!found || string(old.ID) == raftAddr) && n.fsm.peerHTTP(raftAddr) != httpAddr {
		if err := n.verifyHTTP(raftAddr, httpAddr); err != nil {
			n.log.Warn("join refused: its http address does not answer as that server", "id", raftAddr,
				"http", httpAddr, "recorded", n.fsm.peerHTTP(raftAddr), "error", err)
			return 0, &conflict{"conflict"}
		}
	}
	var index uint64
	switch {
	case found && string(old.ID) != raftAddr:
		// One process, two spellings: adding it again would give it two
		// votes, and removing the entry would remove a live member.
		n.log.Info("join of a member under another spelling of its address: nothing to do", "as", raftAddr, "member", old.ID)
		return 0, nil
	case found && old.Suffrage == raft.Voter:
	default:
		// A voter nothing listens on would count towards the quorum and
		// could stall a small cluster: refuse it up front. With TLS this is
		// also where the node proves a certificate signed by our CA.
		if err := n.stream.probe(raftAddr); err != nil {
			return 0, fmt.Errorf("%w: %s: %v", errUnreachablePeer, raftAddr, err)
		}
		index, err = n.changeMembers(n.raft.AddVoter(raft.ServerID(raftAddr), raft.ServerAddress(raftAddr), 0, 0))
		if err != nil {
			return 0, n.raftErr("add voter "+raftAddr, err)
		}
		n.log.Info("added voter", "id", raftAddr, "http", httpAddr, "index", index)
	}
	if httpAddr != "" && n.fsm.peerHTTP(raftAddr) != httpAddr {
		return n.write(command{op: opSetPeer, key: raftAddr, value: httpAddr})
	}
	return index, nil
}

// Leave removes raftAddr (any spelling of it) from the cluster; removing a
// non-member is ok. It answers once the removal is committed. When this
// leader removes itself, hashicorp/raft stops it right after that commit
// (ShutdownOnRemove): it answers this request and then only /status, while
// the others elect a new leader after an election timeout.
func (n *node) Leave(raftAddr string) (uint64, error) {
	servers, err := n.leaderConfiguration()
	if err != nil {
		return 0, err
	}
	s, found := findMember(servers, raftAddr)
	if !found {
		return 0, nil
	}
	index, err := n.changeMembers(n.raft.RemoveServer(s.ID, 0, 0))
	if err != nil {
		return 0, n.raftErr("remove server "+string(s.ID), err)
	}
	n.log.Info("removed server", "id", s.ID, "index", index)
	if string(s.ID) == n.cfg.RaftAdvertise || n.fsm.peerHTTP(string(s.ID)) == "" {
		return index, nil
	}
	if idx, err := n.write(command{op: opDeletePeer, key: string(s.ID)}); err != nil {
		// The server is gone; a stale HTTP address for it is harmless
		// (only the current leader's is ever used).
		n.log.Warn("could not forget http address of removed server", "id", s.ID, "error", err)
	} else {
		index = idx
	}
	return index, nil
}

// aliveWindow: a fresh join may not replace a member the leader heard from
// this recently.
const aliveWindow = 2 * time.Second

// verifyHTTP checks that httpAddr is where the server raftAddr answers: its
// /status gives raftAddr as its Raft address. Without redirects and without
// the token (the address is not trusted yet); with TLS, over HTTPS that
// verifies the certificate against the cluster's CA.
func (n *node) verifyHTTP(raftAddr, httpAddr string) error {
	if n.cfg.Peers == nil {
		return errors.New("this node cannot ask other nodes")
	}
	st, err := n.cfg.Peers.status(context.Background(), httpAddr)
	if err != nil {
		return err
	}
	if st.Raft != raftAddr {
		return fmt.Errorf("it answers as %q", st.Raft)
	}
	return nil
}

// changeMembers waits for a membership change to commit, bounded so an HTTP
// request does not hang (the change may still complete after the timeout),
// and returns the index of its configuration entry.
func (n *node) changeMembers(f raft.IndexFuture) (uint64, error) {
	timer := time.NewTimer(applyTimeout)
	defer timer.Stop()
	if err := n.waitFuture(f, timer.C); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

func (n *node) raftErr(what string, err error) error {
	if notExecuted(err) || errors.Is(err, errStopping) {
		return n.refuse()
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Who counts as a member: only a committed configuration says that this
// node is out. hashicorp/raft's GetConfiguration returns the latest
// configuration, which may hold an uncommitted change that a new leader
// will drop; raft keeps its committed one private (and the Index of
// GetConfiguration's future is always 0 in v1.7.3). So the node keeps its
// own record (committedConfig) of the last configuration it knows to be
// committed: raft hands each configuration entry to the FSM once it is
// committed when the FSM is a raft.ConfigurationStore (configFSM), and
// every snapshot holds a committed configuration (configSnapshots records
// it when raft opens one, at start and when one is installed).
//
// A follower removed with /leave seldom learns that its removal committed:
// the leader sends it the entry in one last AppendEntries, usually before
// the commit, and then nothing more. So a node whose latest configuration
// lacks it, while its committed one does not, is in doubt and asks the
// leader (askLeader): a leader's committed configuration that lacks it
// settles it (gone); one that lists it settles it the other way.

// committedConfig is the last configuration this node knows to be committed.
type committedConfig struct {
	mu      sync.Mutex
	index   uint64
	servers []raft.Server
	known   bool
}

// store records conf, written at index, unless a later one is known.
func (c *committedConfig) store(index uint64, conf raft.Configuration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && index < c.index {
		return
	}
	c.index, c.servers, c.known = index, conf.Clone().Servers, true
}

// get returns the recorded configuration, or nil while none is known.
func (c *committedConfig) get() []raft.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known {
		return nil
	}
	return slices.Clone(c.servers)
}

// configFSM is the state machine raft sees: stcache's, and a
// raft.ConfigurationStore, to which raft hands each configuration entry once
// it is committed (raft's runFSM; nothing else of the FSM changes).
type configFSM struct {
	*fsm
	committed *committedConfig
}

// StoreConfiguration is raft.ConfigurationStore's.
func (f configFSM) StoreConfiguration(index uint64, c raft.Configuration) {
	f.committed.store(index, c)
	f.applied.Store(index)
}

// configSnapshots records the configuration of each snapshot raft opens: to
// restore it at start or once installed from the leader (or to send it). A
// snapshot holds the committed configuration at its index.
type configSnapshots struct {
	raft.SnapshotStore
	committed *committedConfig
}

func (s configSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return meta, rc, err
	}
	s.committed.store(meta.ConfigurationIndex, meta.Configuration)
	return meta, indexedSnapshot{rc, meta.Index}, nil
}

// leaderWord is what the leader's /status says of this node.
type leaderWord int

const (
	noWord     leaderWord = iota // no leader answered, or its configuration that lacks us is not committed yet
	wordListed                   // the leader's configuration lists this node
	wordGone                     // the leader's committed configuration lacks this node
)

// memberView is one look at what this node knows of its own membership.
type memberView struct {
	latest    []raft.Server // raft's latest configuration, perhaps uncommitted
	committed []raft.Server // the last one known committed, nil while none
	leading   bool
	// shutDown: raft stopped by itself, which it does (ShutdownOnRemove)
	// when a leader commits its own removal.
	shutDown bool
}

// membership decides, round after round, whether this node is still a
// member. It is used by one goroutine at a time (openNode's first round,
// then watchMembership).
type membership struct {
	self     string
	hadState bool // started from state of its own
	seenSelf bool // a committed configuration listed this node
	decided  bool
	// gone: a leader's committed configuration lacks this node, while this
	// node's own latest configuration was goneIn (raft does not say which
	// index that is). It holds until that configuration changes or this
	// node wins an election.
	gone    bool
	goneIn  string
	removed bool
	// hints are members' HTTP addresses from log entries this node holds
	// but has not applied (see httpHints), to ask them.
	hints map[string]string
}

// decide returns whether this node is removed, and whether it is in doubt
// (its latest configuration lacks it, its committed one does not say so):
// then it should ask the leader.
//
// A node counts only once it has been a member (a node that joins may hold,
// for a moment, an older configuration from the leader's snapshot) or if it
// started from state of its own (a removed node restarted). In doubt, the
// last decision stands; at start it is the latest configuration's word, so
// that a removed node restarted serves no stale read before a leader
// confirms it.
func (m *membership) decide(v memberView) (removed, doubt bool) {
	inCommitted := v.committed != nil && listsID(v.committed, m.self)
	m.seenSelf = m.seenSelf || inCommitted
	if v.leading {
		m.gone = false // a majority of the voters just counted us in
	}
	if m.gone && fmt.Sprint(v.latest) != m.goneIn {
		m.gone = false // our own configuration moved on: it decides again
	}
	first := !m.decided
	m.decided = true
	switch {
	case !(m.seenSelf || m.hadState) || len(v.latest) == 0:
		m.removed = false
	case len(v.committed) > 0 && !inCommitted && listsID(v.latest, m.self):
		// raft's latest configuration is never older than a committed one,
		// so one that lists us while the committed one lacks us is later:
		// we are being added again, or a node restarted from its own log
		// is applying the configurations before its own addition while it
		// catches up (entry 1, the bootstrap's, lacks every joiner). The
		// later one's commit decides; meanwhile the latest's word stands
		// and the leader is asked. TestHostileJoins met the catch-up as a
		// 503 "not a member" for one round after a restart.
		doubt = true
		m.removed = m.gone
	case len(v.committed) > 0 && !inCommitted:
		m.removed = true
	case v.shutDown && !listsID(v.latest, m.self):
		m.removed = true
	case listsID(v.latest, m.self):
		m.removed = m.gone
	default:
		doubt = true
		m.removed = first || m.removed || m.gone
	}
	return m.removed, doubt
}

// heard takes the leader's word about this node, whose latest configuration
// is latest, and returns the decision.
func (m *membership) heard(w leaderWord, latest []raft.Server) bool {
	switch w {
	case wordGone:
		m.gone, m.goneIn = true, fmt.Sprint(latest)
		m.removed = true
	case wordListed:
		m.gone = false
		if !listsID(latest, m.self) {
			// Our latest configuration's removal of us is not the
			// leader's: it will be dropped.
			m.removed = false
		}
	}
	return m.removed
}

// memberView reads what this node knows of its membership now.
func (n *node) memberView() memberView {
	v := memberView{committed: n.committedCfg.get()}
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		v.latest = cf.Configuration().Servers
	}
	v.leading = n.raft.State() == raft.Leader
	v.shutDown = n.raftStoppedItself()
	return v
}

// raftStoppedItself reports whether raft has stopped by itself, which it
// does (ShutdownOnRemove) when a leader commits its own removal; not when it
// stopped because this node is stopping.
func (n *node) raftStoppedItself() bool {
	if n.raft.State() != raft.Shutdown {
		return false
	}
	select {
	case <-n.stopping: // our own shutdown, not raft's
		return false
	default:
		return true
	}
}

// closeRaftPort closes the Raft transport once raft has stopped by itself.
// Left open, the port accepts connections for a raft that never answers
// again: peers wait out their RPC timeouts instead of being refused at
// once, and a leader's probe before AddVoter (Join) passes, so a /join of
// this node would add a voter that never votes.
func (n *node) closeRaftPort() {
	if err := n.transport.Close(); err != nil {
		n.log.Warn("close the raft port after this node's removal", "error", err)
		return
	}
	n.log.Info("raft stopped after this node's removal: its raft port is closed")
}

// rejoinContext is ctx, also cancelled once raft has stopped by itself
// (n.raftGone). A node that restarts from its own state re-joins in the
// background (main.go) to refresh its HTTP address on the leader, retrying
// while no leader answers. If it leads meanwhile and commits its own
// removal, its raft stops for good, and a re-join that got through after
// that would add back a voter that never answers again: one failure more
// and a three-node cluster has lost its quorum for good. TestJepsen found
// it (a removal at 32.97 s, the re-join through the next leader at
// 39.58 s, then that leader replaced) and TestRejoinAfterOwnRemoval
// repeats it. closeRaftPort makes such a join fail at the leader too.
func (n *node) rejoinContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-n.raftGone:
			n.log.Info("raft stopped after this node's removal: no re-join")
			cancel()
		}
	}()
	return ctx, cancel
}

// firstMembership decides, before the node serves anything, whether it is
// still a member. A node that starts from state of its own asks the others
// once (a second at most): a leader's committed configuration may lack it
// although its own lists it (it was removed while cut off).
func (n *node) firstMembership() {
	v := n.memberView()
	removed, _ := n.members.decide(v)
	if n.hadState && n.cfg.Peers != nil && len(v.latest) > 1 {
		hints, err := n.httpHints()
		if err != nil {
			n.log.Warn("could not read members' http addresses from the log; asking those the snapshot knows", "error", err)
		}
		n.members.hints = hints
		removed = n.members.heard(n.askLeader(context.Background(), v.latest), v.latest)
	}
	n.setRemoved(removed)
}

// httpHints reads the members' HTTP addresses recorded in the log entries
// after the last snapshot. The FSM holds those of the snapshot; the entries
// after it are applied only once a leader says they are committed, which a
// removed node restarted never hears, so without these it might know no
// one to ask. They serve only to ask: an uncommitted address is at worst a
// wrong one.
func (n *node) httpHints() (map[string]string, error) {
	hints := map[string]string{}
	snap := parseUint(n.raft.Stats()["last_snapshot_index"])
	first, err := n.logStore.FirstIndex()
	if err != nil {
		return hints, fmt.Errorf("first index: %w", err)
	}
	last, err := n.logStore.LastIndex()
	if err != nil {
		return hints, fmt.Errorf("last index: %w", err)
	}
	for i := max(first, snap+1); i <= last && i > 0; i++ {
		var e raft.Log
		if err := n.logStore.GetLog(i, &e); err != nil {
			return hints, fmt.Errorf("log entry %d: %w", i, err)
		}
		if e.Type != raft.LogCommand {
			continue
		}
		cmds, err := decodeCommands(e.Data)
		if err != nil {
			continue // every node skips it alike (fsm.Apply)
		}
		for _, c := range cmds {
			switch c.op {
			case opSetPeer:
				hints[c.key] = c.value
			case opDeletePeer:
				delete(hints, c.key)
			}
		}
	}
	return hints, nil
}

func (n *node) setRemoved(removed bool) {
	if n.removed.Swap(removed) == removed {
		return
	}
	if removed {
		n.log.Warn("this node is no longer a member of the cluster: it refuses requests with 503 'not a member' (stop it, or /join it again)")
	} else {
		n.log.Info("this node is a member of the cluster")
	}
}

// watchMembership keeps deciding whether this node is a member: after a
// /leave of a follower, hashicorp/raft leaves that node running, and it
// would serve ever staler reads. See membership.decide.
//
// A node in doubt asks the leader at once (and every second while it
// lasts). A follower removed while it could not hear the leader never
// receives the entry that removes it (raft makes one last attempt, then
// sends it nothing): its configuration still lists it, and it hears from
// nobody. So a member that has known no leader for a while asks too.
func (n *node) watchMembership() {
	defer close(n.membersDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	contactsDone := make(chan struct{})
	go n.watchContacts(contactsDone)
	defer func() { <-contactsDone }()
	go func() {
		<-n.stopWatch
		cancel()
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastLeader, lastAsk := time.Now(), time.Time{}
	gone := false
	for {
		v := n.memberView()
		if v.shutDown && !gone {
			gone = true
			n.closeRaftPort()
			close(n.raftGone) // rejoinContext
		}
		removed, doubt := n.members.decide(v)
		now := time.Now()
		if n.leaderID() != "" {
			lastLeader = now
		}
		lost := !removed && listsID(v.latest, n.cfg.RaftAdvertise) &&
			now.Sub(lastLeader) > 3*time.Second && now.Sub(lastAsk) > 2*time.Second
		if n.cfg.Peers != nil && (lost || doubt && now.Sub(lastAsk) > time.Second) {
			lastAsk = now
			w := n.askLeader(ctx, v.latest)
			if w == wordGone {
				n.log.Info("the leader's configuration no longer lists this node (committed)")
			}
			removed = n.members.heard(w, v.latest)
		}
		n.setRemoved(removed)
		select {
		case <-t.C:
		case <-n.stopWatch:
			return
		}
	}
}

// askLeader asks the other servers of this node's configuration (and the
// -join address) for their /status, all at once and a second at most, and
// returns what the one that leads in the highest term, this node's or a
// later one, says of this node.
func (n *node) askLeader(ctx context.Context, servers []raft.Server) leaderWord {
	term := n.raft.CurrentTerm()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// The -join address too: a member's, and perhaps the only one known.
	var addrs []string
	if n.cfg.JoinVia != "" {
		addrs = append(addrs, n.cfg.JoinVia)
	}
	for _, sv := range servers {
		addr := n.fsm.peerHTTP(string(sv.ID))
		if addr == "" {
			addr = n.members.hints[string(sv.ID)]
		}
		if string(sv.ID) != n.cfg.RaftAdvertise && addr != "" && !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	answers := make(chan status, len(addrs))
	for _, addr := range addrs {
		go func() {
			st, err := n.cfg.Peers.status(ctx, addr)
			if err != nil {
				st = status{} // not an answer
			}
			answers <- st
		}()
	}
	var leader *status
	for range addrs {
		st := <-answers
		if st.State == "Leader" && st.Member && st.Term >= term && (leader == nil || st.Term > leader.Term) {
			leader = &st
		}
	}
	switch {
	case leader == nil:
		return noWord
	case slices.ContainsFunc(leader.Servers, func(s server) bool { return s.ID == n.cfg.RaftAdvertise }):
		return wordListed
	case leader.ConfigurationCommitted:
		return wordGone
	}
	return noWord
}

// configurationCommitted reports whether servers, as /status shows them, is
// the last configuration known committed here.
func (n *node) configurationCommitted(servers []server) bool {
	committed := n.committedCfg.get()
	if committed == nil || len(committed) != len(servers) {
		return false
	}
	for i, s := range committed {
		v := servers[i]
		if string(s.ID) != v.ID || string(s.Address) != v.Address || s.Suffrage.String() != v.Suffrage {
			return false
		}
	}
	return true
}

func listsID(servers []raft.Server, id string) bool {
	_, ok := findMemberByID(servers, id)
	return ok
}

func findMemberByID(servers []raft.Server, id string) (raft.Server, bool) {
	for _, s := range servers {
		if s.ID == raft.ServerID(id) {
			return s, true
		}
	}
	return raft.Server{}, false
}

// contacts is, on a leader, the followers whose heartbeats fail and when
// each last answered. hashicorp/raft keeps its per-follower last contact
// private (followerReplication.LastContact); its observer reports it with
// every failed heartbeat, and reports the first success after failures. A
// follower with no failure since this node last changed state answers
// every heartbeat (one each 100-200 ms), so it counts as heard from now.
// That errs towards "alive": a follower whose packets are dropped is only
// reported once its heartbeat times out (the transport's 10 s).
type contacts struct {
	mu      sync.Mutex
	failing map[raft.ServerID]time.Time // last contact of each follower whose heartbeats fail
}

func (c *contacts) observe(o raft.Observation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		if c.failing == nil {
			c.failing = map[raft.ServerID]time.Time{}
		}
		c.failing[d.PeerID] = d.LastContact
	case raft.ResumedHeartbeatObservation:
		delete(c.failing, d.PeerID)
	case raft.RaftState:
		clear(c.failing) // a new term of leading starts afresh
	}
}

// forget drops what is known: after lost observations, every follower
// counts as heard from until its heartbeats fail again.
func (c *contacts) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.failing)
}

// heardWithin reports whether this leader heard from id within d.
func (c *contacts) heardWithin(id raft.ServerID, d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, failing := c.failing[id]
	return !failing || time.Since(last) < d
}

// watchContacts feeds raft's heartbeat observations to n.contacts until the
// node stops. Its own goroutine, which never waits on anything else, so the
// record is current when a join reads it.
func (n *node) watchContacts(done chan<- struct{}) {
	defer close(done)
	ch := make(chan raft.Observation, 256)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.RaftState:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	dropped := uint64(0)
	for {
		select {
		case o := <-ch:
			n.contacts.observe(o)
			// raft drops an observation rather than wait: a lost
			// "resumed" would make a live follower look dead.
			if d := obs.GetNumDropped(); d != dropped {
				dropped = d
				n.contacts.forget()
			}
		case <-n.stopWatch:
			return
		}
	}
}

// joinCluster asks the member at joinAddr (any member: a follower redirects
// to the leader) to add this node, retrying with backoff until ctx ends.
//
// A node that starts with no state first says so (fresh=true): the leader
// then removes any earlier incarnation at this address, whose votes this node
// no longer remembers. Only after that does it open its Raft port (open) and
// ask to be added. Had the port been open sooner, a candidate that still
// counts the old incarnation as a voter could win this node's vote with a
// log that lacks committed entries (hashicorp/raft grants votes freely while
// its configuration is empty), and those entries would be lost.
func joinCluster(ctx context.Context, log hclog.Logger, j *joiner, joinAddr, raftAddr, httpAddr string, fresh bool, open func()) error {
	params := url.Values{"peerAddress": {raftAddr}, "httpAddress": {httpAddr}}
	if fresh {
		params.Set("fresh", "true")
		if err := j.ask(ctx, log, joinAddr, params); err != nil {
			return err
		}
		params.Del("fresh")
	}
	open()
	return j.ask(ctx, log, joinAddr, params)
}

// joiner is how a node talks to a member's /join: over HTTPS trusting the
// cluster's CA when TLS is on, with the cluster's token when there is one.
type joiner struct {
	scheme string // "http://" or "https://"
	token  string
	client *http.Client
	// peek reads a /status: no token (/status needs none, and the address
	// may not be a member's yet) and no redirect (a 3xx is no answer).
	peek *http.Client
}

func newJoiner(t *tlsSetup, token string) *joiner {
	j := &joiner{scheme: "http://", token: token}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t != nil {
		j.scheme = "https://"
		tr.TLSClientConfig = t.httpClient
	}
	j.client = &http.Client{
		Transport: tr,
		Timeout:   applyTimeout + 5*time.Second,
		// A follower redirects to the leader; Go drops Authorization on
		// a redirect to another host:port, so carry it over ourselves (the
		// Location comes from a member, which holds the token anyway).
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			if a := via[0].Header.Get("Authorization"); a != "" {
				req.Header.Set("Authorization", a)
			}
			return nil
		},
	}
	j.peek = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return j
}

// status reads the /status at addr, waiting at most a second, following no
// redirect. It sends no token: /status needs none, and addr may come from the
// replicated peer map or from a join being checked, so the token would go
// wherever such a claim points.
func (j *joiner) status(ctx context.Context, addr string) (status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.scheme+addr+"/status", nil)
	if err != nil {
		return status{}, err
	}
	resp, err := j.peek.Do(req)
	if err != nil {
		return status{}, err
	}
	defer resp.Body.Close()
	var st status
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status of %s: %s", addr, resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st, err
}

func (j *joiner) ask(ctx context.Context, log hclog.Logger, joinAddr string, params url.Values) error {
	u := j.scheme + joinAddr + "/join?" + params.Encode()
	backoff := 100 * time.Millisecond
	var last error
	conflicted := false
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("join via %s: %w", joinAddr, err)
		}
		if j.token != "" {
			req.Header.Set("Authorization", "Bearer "+j.token)
		}
		resp, err := j.client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode == http.StatusOK && string(body) == "ok":
				if params.Get("fresh") != "" {
					log.Info("leader has forgotten any earlier incarnation of this node", "via", joinAddr, "attempts", attempt)
				} else {
					log.Info("joined cluster", "via", joinAddr, "attempts", attempt)
				}
				return nil
			case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized:
				// Retrying will not fix a request the cluster refuses as such.
				return fmt.Errorf("join via %s refused: %s", joinAddr, strings.TrimSpace(string(body)))
			case resp.StatusCode == http.StatusConflict:
				// Our earlier incarnation may have died a moment ago
				// and still count as alive: retry until the timeout.
				err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
				if !conflicted {
					conflicted = true
					log.Info("join refused for now; retrying", "via", joinAddr, "attempt", attempt, "error", err)
				}
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
