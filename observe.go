package main

// What this node's Raft does, turned into events for the hub (events.go):
// hashicorp/raft's observer reports elections, votes and heartbeats as they
// happen; a poller, ten times a second, reports to whoever watches what the
// observer does not: log indices, snapshots, restores,
// membership and the leader's HTTP address.

import (
	"reflect"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// progressEvery is how often the poller looks; the contract's "at most every
// 100 ms" for progress events.
const progressEvery = 100 * time.Millisecond

// watchEvents runs until the node stops.
func (n *node) watchEvents(h *hub) {
	defer close(n.eventsDone)
	// Not blocking: raft drops an observation rather than wait for us, so
	// a slow hub can never slow Raft. 256 is many elections' worth.
	ch := make(chan raft.Observation, 256)
	obs := raft.NewObserver(ch, false, nil)
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)

	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	w := &watcher{n: n, h: h, failing: map[raft.ServerID]bool{}}
	for {
		select {
		case o := <-ch:
			w.observed(o)
		case <-tick.C:
			w.poll()
		case <-n.stopWatch:
			return
		}
	}
}

// watcher is watchEvents' state: what was last reported, so only changes
// become events.
type watcher struct {
	n       *node
	h       *hub
	failing map[raft.ServerID]bool // followers whose heartbeats fail

	primed     bool // last holds a reading (not the zero value)
	last       progress
	leader     string
	leaderHTTP string
	servers    []server
	restores   uint64
	persist    *persistInfo
}

type progress struct {
	lastLog, commit, applied, snapshot, term uint64
	keys                                     int
}

func (w *watcher) observed(o raft.Observation) {
	n := w.n
	switch d := o.Data.(type) {
	case raft.RaftState:
		clear(w.failing) // heartbeats are the leader's business only
		w.h.publish("state", map[string]any{"state": d.String(), "term": n.raft.CurrentTerm()})
	case raft.LeaderObservation:
		w.leader, w.leaderHTTP = string(d.LeaderID), n.fsm.peerHTTP(string(d.LeaderID))
		w.h.publish("leader", map[string]any{"leader": w.leader, "leader_http": w.leaderHTTP, "term": n.raft.CurrentTerm()})
	case raft.RequestVoteRequest:
		w.h.publish("vote", map[string]any{"candidate": candidate(d.RPCHeader), "term": d.Term, "prevote": false})
	case raft.RequestPreVoteRequest:
		w.h.publish("vote", map[string]any{"candidate": candidate(d.RPCHeader), "term": d.Term, "prevote": true})
	case raft.FailedHeartbeatObservation:
		// Raft reports every failed attempt; a learner wants the change.
		if !w.failing[d.PeerID] {
			w.failing[d.PeerID] = true
			w.h.publish("heartbeat", map[string]any{"peer": string(d.PeerID), "ok": false, "last_contact": rfc3339(d.LastContact)})
		}
	case raft.ResumedHeartbeatObservation:
		if w.failing[d.PeerID] {
			delete(w.failing, d.PeerID)
			w.h.publish("heartbeat", map[string]any{"peer": string(d.PeerID), "ok": true, "last_contact": rfc3339(time.Now())})
		}
	}
}

// candidate names the server asking for a vote by its ID, which is its
// advertised Raft address (older peers send only the address).
func candidate(h raft.RPCHeader) string {
	if len(h.ID) > 0 {
		return string(h.ID)
	}
	return string(h.Addr)
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// poll reports what changed since the last look. It looks even while
// nobody watches (ten cheap reads a second), so that its last reading is
// always the previous one: a subscriber gets its status when it connects,
// and every change after that, even one that lands before the next look.
func (w *watcher) poll() {
	n := w.n
	st := n.Status() // one read of raft's stats and configuration
	p := progress{
		lastLog: st.LastLogIndex, commit: st.CommitIndex, applied: st.AppliedIndex,
		snapshot: st.LastSnapshotIndex, term: st.Term, keys: st.Keys,
	}
	servers := st.Servers
	restores := n.fsm.restores.Load()
	persist := n.fsm.lastPersist.Load()
	leaderHTTP := n.fsm.peerHTTP(w.leader)
	if w.primed && w.h.count() > 0 {
		if p != w.last {
			w.h.publish("progress", map[string]any{
				"last_log_index": p.lastLog, "commit_index": p.commit, "applied_index": p.applied,
				"last_snapshot_index": p.snapshot, "keys": p.keys, "term": p.term,
			})
		}
		// A snapshot this node wrote (one installed from the leader is a
		// restore): raft moves its index once the file is complete.
		if p.snapshot != w.last.snapshot && persist != w.persist && persist != nil {
			w.h.publish("snapshot", map[string]any{
				"index": p.snapshot, "term": parseUint(n.raft.Stats()["last_snapshot_term"]),
				"keys": persist.keys, "duration_ms": float64(persist.took.Microseconds()) / 1000,
			})
		}
		if restores != w.restores {
			w.h.publish("restore", map[string]any{"index": p.snapshot, "keys": n.fsm.restoredLen.Load()})
		}
		if !reflect.DeepEqual(servers, w.servers) {
			w.h.publish("membership", map[string]any{"servers": servers})
		}
		if leaderHTTP != w.leaderHTTP {
			// The leader's HTTP address arrives through the log, after
			// raft named the leader: tell the page where to send writes.
			w.h.publish("leader", map[string]any{"leader": w.leader, "leader_http": leaderHTTP, "term": p.term})
		}
	}
	if p.snapshot != w.last.snapshot {
		w.persist = persist
	}
	w.last, w.servers, w.restores, w.leaderHTTP = p, servers, restores, leaderHTTP
	w.primed = true
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64) // raft's own stats: absent reads as 0
	return v
}
