package main

// The lab (-lab): link faults a learner sets from the page, held by the node
// itself and applied where its Raft RPCs leave it, in the stream layer under
// raft's NetworkTransport. A cut makes every RPC this node sends to a peer
// fail: its open connections to the peer (raft's pooled and pipelined ones)
// are closed at once and new dials refused. A slow link delays each write
// on those connections. Both are one-way: a two-way partition is a cut on
// both nodes. Only loopback nodes may run with -lab (main.go), so these
// switches never exist on a real deployment.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// maxLabDelay bounds a slow link's delay (the contract's 10 s): longer would
// only look like a cut, and raft's own RPC timeout is 10 s.
const maxLabDelay = 10 * time.Second

// errNotPeer: the lab was asked about a server that is not another member.
var errNotPeer = errors.New("not another member")

// lab holds this node's link faults, per peer.
type lab struct {
	self    string          // this node's server ID
	members func() []server // the configuration this node knows
	events  *hub
	log     hclog.Logger

	mu    sync.Mutex
	links map[string]*link // by peer address, as raft dials it
}

// link is this node's side of its connection to one peer.
type link struct {
	id    string // the peer's server ID ("" while only dialled, never faulted)
	cut   bool
	delay time.Duration
	// changed is closed and replaced whenever cut or delay change, so a
	// write waiting out the old delay looks again.
	changed chan struct{}
	conns   map[*labConn]struct{} // open connections this node dialled
}

func newLab(self string, members func() []server, events *hub, log hclog.Logger) *lab {
	return &lab{self: self, members: members, events: events, log: log, links: map[string]*link{}}
}

// linkLocked returns the link to address, creating it.
func (l *lab) linkLocked(address string) *link {
	k := l.links[address]
	if k == nil {
		k = &link{changed: make(chan struct{}), conns: map[*labConn]struct{}{}}
		l.links[address] = k
	}
	return k
}

// peer resolves a server ID to its address, if it is another member.
func (l *lab) peer(id string) (string, error) {
	if id == l.self {
		return "", errNotPeer
	}
	for _, s := range l.members() {
		if s.ID == id {
			return s.Address, nil
		}
	}
	return "", errNotPeer
}

// Cut fails every RPC this node sends to peer (a server ID) from now on.
func (l *lab) Cut(peer string) error {
	addr, err := l.peer(peer)
	if err != nil {
		return err
	}
	l.mu.Lock()
	k := l.linkLocked(addr)
	k.id, k.cut = peer, true
	k.changedLocked()
	conns := make([]*labConn, 0, len(k.conns))
	for c := range k.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	// Outside the lock: Close takes it to forget the conn.
	for _, c := range conns {
		_ = c.Close() // it may have failed and closed already
	}
	l.log.Info("lab: link cut", "peer", peer, "connections_closed", len(conns))
	l.events.publish("lab", map[string]any{"action": "cut", "peer": peer, "delay": ""})
	return nil
}

// Slow delays each RPC this node sends to peer by d (0 < d ≤ maxLabDelay).
func (l *lab) Slow(peer string, d time.Duration) error {
	if d <= 0 || d > maxLabDelay {
		return fmt.Errorf("delay %v: want more than 0 and at most %v", d, maxLabDelay)
	}
	addr, err := l.peer(peer)
	if err != nil {
		return err
	}
	l.mu.Lock()
	k := l.linkLocked(addr)
	k.id, k.delay = peer, d
	k.changedLocked()
	l.mu.Unlock()
	l.log.Info("lab: link slowed", "peer", peer, "delay", d)
	l.events.publish("lab", map[string]any{"action": "slow", "peer": peer, "delay": d.String()})
	return nil
}

// Heal undoes cuts and delays towards peer, or towards every peer if peer
// is "". A peer that has left the configuration while faulted may still be
// healed by its ID.
func (l *lab) Heal(peer string) error {
	l.mu.Lock()
	found := false
	for _, k := range l.links {
		if peer == "" || k.id == peer {
			found = found || k.id != ""
			k.cut, k.delay = false, 0
			k.changedLocked()
		}
	}
	l.mu.Unlock()
	if peer != "" && !found {
		if _, err := l.peer(peer); err != nil {
			return err
		}
	}
	l.log.Info("lab: healed", "peer", peer)
	l.events.publish("lab", map[string]any{"action": "heal", "peer": peer, "delay": ""})
	return nil
}

func (k *link) changedLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// labStatus is the "lab" object of /status.
type labStatus struct {
	Cut  []string          `json:"cut"`  // server IDs this node's RPCs do not reach
	Slow map[string]string `json:"slow"` // server ID → delay
}

func (l *lab) status() *labStatus {
	st := &labStatus{Cut: []string{}, Slow: map[string]string{}}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.links {
		if k.cut {
			st.Cut = append(st.Cut, k.id)
		}
		if k.delay > 0 {
			st.Slow[k.id] = k.delay.String()
		}
	}
	slices.Sort(st.Cut)
	return st
}

// stream puts the lab between raft's transport and s: every connection
// raft dials goes through it. Without the lab (l == nil), s itself.
func (l *lab) stream(s raft.StreamLayer) raft.StreamLayer {
	if l == nil {
		return s
	}
	return &labStream{StreamLayer: s, lab: l}
}

// labStream is a stream layer whose dials the lab refuses or tracks.
type labStream struct {
	raft.StreamLayer
	lab *lab
}

// Dial refuses a cut peer at once, and otherwise returns the connection
// wrapped so the lab can delay its writes and close it.
func (s *labStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	addr := string(address)
	if s.lab.isCut(addr) {
		return nil, fmt.Errorf("dial %s: link cut by the lab", addr)
	}
	c, err := s.StreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	return s.lab.track(addr, c)
}

func (l *lab) isCut(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.links[addr]
	return k != nil && k.cut
}

// track wraps c, dialled to addr, unless the link was cut while it was
// being dialled.
func (l *lab) track(addr string, c net.Conn) (net.Conn, error) {
	l.mu.Lock()
	k := l.linkLocked(addr)
	if k.cut {
		l.mu.Unlock()
		_ = c.Close() // never used
		return nil, fmt.Errorf("dial %s: link cut by the lab", addr)
	}
	lc := &labConn{Conn: c, lab: l, link: k, closed: make(chan struct{})}
	k.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// wait returns the link's delay and a channel closed when it changes.
func (l *lab) wait(k *link) (time.Duration, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return k.delay, k.changed
}

// labConn is a connection raft dialled to a peer, as the lab sees it.
type labConn struct {
	net.Conn
	lab       *lab
	link      *link
	closeOnce sync.Once
	closed    chan struct{}
}

// Write holds b back for the link's delay, counted from the call: raft
// flushes one RPC per write (its send buffer is 256 KiB), so each RPC is
// delayed; a larger RPC is delayed once per 256 KiB. A heal or a new delay
// takes effect on writes already waiting; a cut closes the connection and
// the write fails.
func (c *labConn) Write(b []byte) (int, error) {
	start := time.Now()
	for {
		d, changed := c.lab.wait(c.link)
		left := time.Until(start.Add(d))
		if left <= 0 {
			break
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-changed:
		case <-c.closed:
		}
		t.Stop()
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		default:
		}
	}
	return c.Conn.Write(b)
}

// Close closes the connection and forgets it.
func (c *labConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		c.lab.mu.Lock()
		delete(c.link.conns, c)
		c.lab.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// ---- HTTP: POST /lab/cut, /lab/slow, /lab/heal, /lab/transfer, /lab/snapshot ----

// labAction is the handler of POST /lab/<action>, or nil when this node
// runs without -lab (the route is then absent: 404). Parameters are read
// from the query; a body is ignored.
func (a *api) labAction(action string) http.HandlerFunc {
	l := a.store.Lab()
	if l == nil {
		return nil
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			text(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		p, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			text(w, http.StatusBadRequest, "param error\n")
			return
		}
		peer := p.Get("peer")
		switch action {
		case "cut":
			err = l.Cut(peer)
		case "slow":
			var d time.Duration
			if d, err = time.ParseDuration(p.Get("delay")); err == nil {
				err = l.Slow(peer, d)
			}
		case "heal":
			err = l.Heal(peer)
		case "transfer":
			a.labTransfer(w, r, l, p.Get("to"))
			return
		case "snapshot":
			a.labSnapshot(w, r, l)
			return
		}
		if err != nil {
			// Every failure is the request's: an unknown peer or a bad delay.
			text(w, http.StatusBadRequest, "param error\n")
			return
		}
		text(w, http.StatusOK, "ok\n")
	}
}

// labTransfer is POST /lab/transfer?to=<server ID>: the leader hands over to
// that member. Like a write, a non-leader refuses (307 to the leader, or 503);
// a "to" that is not another member is 400.
func (a *api) labTransfer(w http.ResponseWriter, r *http.Request, l *lab, to string) {
	err := a.store.TransferLeadership(to)
	switch {
	case errors.Is(err, errNotPeer):
		text(w, http.StatusBadRequest, "param error\n")
	case err != nil:
		a.fail(w, r, err)
	default:
		l.events.publish("lab", map[string]any{"action": "transfer", "peer": to, "delay": ""})
		text(w, http.StatusOK, "ok\n")
	}
}

// labSnapshot is POST /lab/snapshot: a snapshot now, on this node. Nothing
// new since the last one is still 200, and says so.
func (a *api) labSnapshot(w http.ResponseWriter, r *http.Request, l *lab) {
	taken, err := a.store.SnapshotNow()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	l.events.publish("lab", map[string]any{"action": "snapshot", "peer": "", "delay": ""})
	if !taken {
		text(w, http.StatusOK, "ok: nothing new since the last snapshot\n")
		return
	}
	text(w, http.StatusOK, "ok\n")
}
