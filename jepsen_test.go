package main

// A Jepsen-style fault test: real stcached processes, clients writing and
// reading a handful of keys through whichever node leads, a nemesis that
// kills, pauses and partitions nodes at random, and a linearizability check
// of everything the clients saw (jepsen_check_test.go), with the Raft
// traffic between nodes going through cuttable proxies
// (jepsen_proxy_test.go).
//
// go test -run '^TestJepsen$' runs the short version (3 nodes, 30 s of
// faults); -jepsen.long (or STCACHE_JEPSEN=long) the long one; -jepsen.stale
// (or STCACHE_JEPSEN_STALE=1) reads with consistency=stale from any node and
// only reports the checker's verdict. make jepsen runs the long one.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var (
	jepsenLong     = flag.Bool("jepsen.long", false, "TestJepsen: the long version, 5 nodes, more clients, several minutes (or STCACHE_JEPSEN=long)")
	jepsenStale    = flag.Bool("jepsen.stale", false, "TestJepsen: read with consistency=stale from any node and report what the checker finds, without failing on it (or STCACHE_JEPSEN_STALE=1)")
	jepsenDuration = flag.Duration("jepsen.duration", 0, "TestJepsen: how long clients and nemesis run (default 30s, long version 5m)")
	jepsenSeed     = flag.Uint64("jepsen.seed", 0, "TestJepsen: seed of the clients' and the nemesis' random choices (default: new each run, logged)")
	jepsenFaults   = flag.String("jepsen.faults", "", "TestJepsen: only these fault kinds, comma-separated (kill, pause, partition, replace, member, oneway, slow, split)")
)

type jepsenConfig struct {
	mode         string
	nodes        int
	clients      int
	keys         int
	duration     time.Duration
	faultGap     [2]time.Duration // pause between two faults, min and max
	faultLen     [2]time.Duration // how long one fault lasts, min and max
	reqTimeout   time.Duration
	checkTimeout time.Duration
	minOK        int // operations that must succeed, of each kind below
	minWrites    int
	minReads     int
	stale        bool
	seed         uint64
}

func jepsenConfigFromFlags() jepsenConfig {
	c := jepsenConfig{
		mode: "short", nodes: 3, clients: 5, keys: 5,
		// Seven kinds of fault, each at least once: the seventh starts by
		// 6 × (2 + 3.5) + 2 = 35 s at the latest, plus the few seconds a
		// membership change waits for its joiner.
		duration: 42 * time.Second,
		faultGap: [2]time.Duration{500 * time.Millisecond, 2 * time.Second},
		faultLen: [2]time.Duration{1500 * time.Millisecond, 3500 * time.Millisecond},
		// A few seconds: a write that takes longer is counted as
		// indeterminate, which costs the checker; a healthy -race cluster
		// on a busy 2-core machine answers well within this.
		reqTimeout:   4 * time.Second,
		checkTimeout: time.Minute,
		// Well below what a loaded machine manages (several thousand),
		// well above what a cluster that refuses almost everything does.
		minOK: 500, minWrites: 150, minReads: 150,
	}
	if *jepsenLong || os.Getenv("STCACHE_JEPSEN") == "long" {
		c.mode = "long"
		c.nodes, c.clients, c.keys = 5, 10, 10
		c.duration = 5 * time.Minute
		c.faultGap = [2]time.Duration{2 * time.Second, 6 * time.Second}
		c.faultLen = [2]time.Duration{2 * time.Second, 8 * time.Second}
		c.checkTimeout = 5 * time.Minute
		c.minOK, c.minWrites, c.minReads = 2000, 500, 500
	}
	if *jepsenDuration > 0 {
		// Scale the minimum activity with the run, so a short custom run
		// is not failed for doing less.
		scale := float64(*jepsenDuration) / float64(c.duration)
		c.minOK = int(float64(c.minOK) * min(scale, 1))
		c.minWrites = int(float64(c.minWrites) * min(scale, 1))
		c.minReads = int(float64(c.minReads) * min(scale, 1))
		c.duration = *jepsenDuration
	}
	c.stale = *jepsenStale || os.Getenv("STCACHE_JEPSEN_STALE") == "1"
	c.seed = *jepsenSeed
	if c.seed == 0 {
		c.seed = rand.Uint64()
	}
	return c
}

func (c jepsenConfig) String() string {
	reads := "strong reads from the leader"
	if c.stale {
		reads = "STALE reads from any node"
	}
	return fmt.Sprintf("%s version: %d nodes, %d clients, %d keys, %s, %v of faults, request timeout %v, seed %d (-jepsen.seed=%d repeats the choices, not the timing)",
		c.mode, c.nodes, c.clients, c.keys, reads, c.duration, c.reqTimeout, c.seed, c.seed)
}

// jepsenCluster is a cluster whose Raft traffic goes through raftNet. Its
// nodes are slots: the members, and for the fault test one more that starts
// outside the configuration (addSpare), so the nemesis can add a voter with
// an address the cluster never had and remove one without shrinking the
// cluster for good.
type jepsenCluster struct {
	*cluster
	net   *raftNet
	names map[string]string // HTTP address -> node name
	// With TLS and a token (the proxies pass TLS through untouched).
	secure       *secureClient
	statusClient *http.Client

	setup func(i int, p *proc) // proxy (and TLS) for slot i

	mu     sync.Mutex
	member []bool // the slot is a voter (or joining as one), as the nemesis made it
}

// startJepsenCluster starts n nodes behind cuttable proxies (with room in
// the network for a spare); secure runs them with mutual TLS on Raft,
// HTTPS and a token.
func startJepsenCluster(t *testing.T, n int, secure bool) *jepsenCluster {
	t.Helper()
	nw := newRaftNet(n + 1)
	// Registered before the nodes' cleanups, so it runs after they are
	// killed.
	t.Cleanup(nw.close)
	var secureUp func(int, *proc)
	if secure {
		secureUp, _ = secureSetup(t, makeCerts(t, t.TempDir()))
	}
	setup := func(i int, p *proc) {
		px, err := nw.listen(i, p.raft)
		if err != nil {
			t.Fatalf("raft proxy for %s: %v", p.name, err)
		}
		p.raftAdv = px.addr()
		nw.attach(i, p.pid)
		if secureUp != nil {
			secureUp(i, p)
		}
	}
	c := startCluster(t, n, setup)
	// A short timeout: a paused node must not hold up the nemesis or the
	// leader monitor for long.
	jc := &jepsenCluster{cluster: c, net: nw, names: map[string]string{}, statusClient: &http.Client{Timeout: time.Second}, setup: setup}
	if secure {
		jc.secure = c.nodes[0].secure
		jc.statusClient.Transport = jc.secure.client.Transport
	}
	for _, p := range c.nodes {
		jc.names[p.http] = p.name
		jc.member = append(jc.member, true)
	}
	return jc
}

// addSpare adds a slot outside the configuration, not started; it returns
// its index.
func (jc *jepsenCluster) addSpare(t *testing.T) int {
	i := len(jc.nodes)
	p := newProc(t, fmt.Sprintf("node%d", i+1))
	jc.setup(i, p)
	jc.nodes = append(jc.nodes, p)
	jc.names[p.http] = p.name
	jc.setMember(i, false)
	return i
}

// members lists the slots in the configuration, in slot order.
func (jc *jepsenCluster) members() []int {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	var m []int
	for i, in := range jc.member {
		if in {
			m = append(m, i)
		}
	}
	return m
}

func (jc *jepsenCluster) isMember(i int) bool {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	return jc.member[i]
}

func (jc *jepsenCluster) setMember(i int, in bool) {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	for len(jc.member) <= i {
		jc.member = append(jc.member, false)
	}
	jc.member[i] = in
}

// memberProcs are the members' processes.
func (jc *jepsenCluster) memberProcs() []*proc {
	var ps []*proc
	for _, i := range jc.members() {
		ps = append(ps, jc.nodes[i])
	}
	return ps
}

// kvClient returns a client for the workload, speaking the cluster's
// scheme with its token.
func (jc *jepsenCluster) kvClient(h *history, hc *http.Client) *kvClient {
	c := newKVClient(h, hc)
	if jc.secure != nil {
		c.scheme, c.token = "https://", jc.secure.token
	}
	return c
}

func (jc *jepsenCluster) quickStatus(addr string) (status, bool) {
	scheme := "http://"
	if jc.secure != nil {
		scheme = "https://"
	}
	resp, err := jc.statusClient.Get(scheme + addr + "/status")
	if err != nil {
		return status{}, false
	}
	defer resp.Body.Close()
	var s status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&s) != nil {
		return status{}, false
	}
	return s, true
}

// statuses asks every node at once; missing answers are !ok.
func (jc *jepsenCluster) statuses() ([]status, []bool) {
	st := make([]status, len(jc.nodes))
	ok := make([]bool, len(jc.nodes))
	var wg sync.WaitGroup
	for i, p := range jc.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st[i], ok[i] = jc.quickStatus(p.http)
		}()
	}
	wg.Wait()
	return st, ok
}

// usableLeader returns the node that leads with writes enabled and that a
// majority of the voters in its configuration name as leader, or -1.
func (jc *jepsenCluster) usableLeader(st []status, ok []bool) int {
	for i := range st {
		if !ok[i] || st[i].State != "Leader" || !st[i].Writable {
			continue
		}
		agree, voters := 0, 0
		for _, sv := range st[i].Servers {
			if sv.Suffrage != "Voter" {
				continue
			}
			voters++
			for j := range st {
				if ok[j] && st[j].Raft == sv.ID && st[j].Leader == st[i].Raft {
					agree++
				}
			}
		}
		if agree > voters/2 {
			return i
		}
	}
	return -1
}

// leaderIndex is the node that says it leads, or -1.
func (jc *jepsenCluster) leaderIndex() int {
	st, ok := jc.statuses()
	for i := range st {
		if ok[i] && st[i].State == "Leader" {
			return i
		}
	}
	return -1
}

// leaderMonitor measures how long the cluster goes without a usable leader,
// by polling every node's /status.
type leaderMonitor struct {
	jc       *jepsenCluster
	h        *history
	interval time.Duration
	logf     func(format string, args ...any)

	mu        sync.Mutex
	polls     int
	last      time.Time // last poll that found a leader
	inGap     bool
	gapTick   int64
	longest   time.Duration
	longestAt time.Time
	gaps      int // windows longer than one second
	start     time.Time
	// timeline has a line each time the usable leader or its term
	// changes, for the record a failed run leaves (writeRecord).
	timeline []string
	lastSeen string
}

func (m *leaderMonitor) run(ctx context.Context) {
	m.mu.Lock()
	m.start = time.Now()
	m.last = m.start
	m.mu.Unlock()
	for {
		t0 := time.Now()
		st, ok := m.jc.statuses()
		li := m.jc.usableLeader(st, ok)
		found := li >= 0
		seen := "no usable leader"
		if found {
			seen = fmt.Sprintf("%s leads term %d", m.jc.nodes[li].name, st[li].Term)
		}
		m.mu.Lock()
		if seen != m.lastSeen {
			m.timeline = append(m.timeline, fmt.Sprintf("%8v  %s", t0.Sub(m.start).Round(100*time.Millisecond), seen))
			m.lastSeen = seen
		}
		m.polls++
		if found {
			if m.inGap {
				m.closeGapLocked(t0)
			}
			m.last = t0
		} else if !m.inGap {
			m.inGap = true
			m.gapTick = m.h.now()
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			m.mu.Lock()
			if m.inGap {
				m.closeGapLocked(time.Now())
			}
			m.mu.Unlock()
			return
		case <-time.After(m.interval - time.Since(t0)):
		}
	}
}

func (m *leaderMonitor) closeGapLocked(now time.Time) {
	m.inGap = false
	gap := now.Sub(m.last)
	if gap > m.longest {
		m.longest, m.longestAt = gap, m.last
	}
	if gap > time.Second {
		m.gaps++
	}
	if gap > 2*time.Second {
		m.logf("monitor at %v: no usable leader for %v", m.last.Sub(m.start).Round(100*time.Millisecond), gap.Round(10*time.Millisecond))
	}
	m.h.note("no leader", fmt.Sprintf("no usable leader for about %v", gap.Round(10*time.Millisecond)), m.gapTick, m.h.now())
}

func (m *leaderMonitor) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	longest := "never without a usable leader"
	if m.longest > 0 {
		longest = fmt.Sprintf("longest window without a usable leader %v (starting %v into the test)",
			m.longest.Round(10*time.Millisecond), m.longestAt.Sub(m.start).Round(100*time.Millisecond))
	}
	return fmt.Sprintf("%s, %d windows over 1s, from %d polls of every node's /status every %v (a leader counts when it says Leader with writes enabled and a majority names it; a node that does not answer within 1s names none)",
		longest, m.gaps, m.polls, m.interval)
}

// nemesis injects one fault at a time, at random, and always undoes it.
type nemesis struct {
	t   *testing.T
	jc  *jepsenCluster
	h   *history
	cfg jepsenConfig
	rng *rand.Rand
	// began is when the workload started, to place faults in the log
	// next to the leader monitor's windows.
	began time.Time

	mu       sync.Mutex
	counts   map[string]int
	problems []string // nodes found dead that the nemesis had not killed
	schedule []string // every fault, when and for how long (writeRecord)

	// out are the slots outside the configuration, longest out first;
	// parked those of them the nemesis keeps down (never started, or
	// wiped), the others run on as removed nodes.
	out    []int
	parked map[int]bool
	// sameAddress: the next membership change brings back the node it
	// removed (wiped) rather than another slot; it alternates, so both
	// happen in a long run, and the two short runs (plain and TLS) begin
	// with different ones.
	sameAddress bool
}

func (nm *nemesis) kinds() []string {
	k := []string{"kill", "pause", "partition", "replace", "member", "oneway", "slow"}
	if nm.cfg.nodes >= 5 {
		k = append(k, "split")
	}
	if *jepsenFaults != "" {
		return strings.Split(*jepsenFaults, ",")
	}
	return k
}

func (nm *nemesis) count(kind string) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	nm.counts[kind]++
}

func (nm *nemesis) between(r [2]time.Duration) time.Duration {
	return r[0] + time.Duration(nm.rng.Int64N(int64(r[1]-r[0])+1))
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (nm *nemesis) run(ctx context.Context) {
	kinds := nm.kinds()
	for {
		// Every kind once per round, in random order, so that even a short
		// run sees each.
		for _, i := range nm.rng.Perm(len(kinds)) {
			if !sleep(ctx, nm.between(nm.cfg.faultGap)) {
				return
			}
			nm.checkAlive()
			nm.act(ctx, kinds[i])
		}
	}
}

// checkAlive notes nodes that died though no fault killed them (a crash, a
// race report): the fault test fails on them.
func (nm *nemesis) checkAlive() {
	for i, p := range nm.jc.nodes {
		if nm.parked[i] {
			continue
		}
		if !p.running() {
			nm.mu.Lock()
			nm.problems = append(nm.problems, fmt.Sprintf("%s exited by itself: %v", p.name, p.exitError()))
			nm.mu.Unlock()
			p.restart()
		}
	}
}

// victim picks a member, the leader half the time (when there is one).
func (nm *nemesis) victim(exclude ...int) int {
	members := nm.jc.members()
	if l := nm.jc.leaderIndex(); l >= 0 && nm.jc.isMember(l) && !slices.Contains(exclude, l) && nm.rng.IntN(2) == 0 {
		return l
	}
	for {
		if i := members[nm.rng.IntN(len(members))]; !slices.Contains(exclude, i) {
			return i
		}
	}
}

// follower picks a member other than the leader and exclude (any member
// if none is left).
func (nm *nemesis) follower(exclude ...int) int {
	members := nm.jc.members()
	l := nm.jc.leaderIndex()
	for _, i := range nm.rng.Perm(len(members)) {
		if m := members[i]; m != l && !slices.Contains(exclude, m) {
			return m
		}
	}
	return members[0]
}

// leave removes member i with /leave, sent to whichever node leads (the
// leader may remove itself), retried until the removal is committed.
func (nm *nemesis) leave(i int) error {
	nodes := nm.jc.nodes
	path := "/leave?peerAddress=" + nodes[i].raftAdv
	return poll(30*time.Second, func() error {
		l := nm.jc.leaderIndex()
		if l < 0 {
			return fmt.Errorf("no leader")
		}
		r, err := nodes[l].call(path)
		if err != nil || r.code != http.StatusOK {
			return fmt.Errorf("/leave of %s through %s: %d %q %v", nodes[i].name, nodes[l].name, r.code, r.body, err)
		}
		return nil
	})
}

// poll is waitFor for goroutines other than the test's (where t.Fatal may
// not be called): nil, or cond's last error once timeout has passed.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addVoter starts slot j with no state and -join through a follower, and
// waits until the leader's configuration lists it as a voter, so that the
// nemesis's idea of the membership is the cluster's.
func (nm *nemesis) addVoter(j int) {
	nodes := nm.jc.nodes
	p := nodes[j]
	p.kill()
	if err := os.RemoveAll(p.dir); err != nil {
		nm.t.Errorf("wipe %s: %v", p.name, err)
	}
	via := nodes[nm.follower(j)]
	p.start("-join", via.http, "-join-timeout", "10m")
	nm.jc.setMember(j, true)
	delete(nm.parked, j)
	nm.out = slices.DeleteFunc(nm.out, func(k int) bool { return k == j })
	nm.waitVoter(j, via)
}

// waitVoter waits until the leader's configuration lists slot j, which
// joined through via, as a voter: until then a /leave of it could come
// before its join and be undone by it. And until j's own configuration
// lists it: a node replaced under the same address is in the leader's
// configuration from the start (its earlier incarnation), but it has joined
// only once the leader has forgotten that one (a 409 "is alive" while the
// leader heard from it in the last 2 s) and added it again. Until then its
// Raft port is shut, so a /leave of another member could leave a
// configuration whose quorum needs it, and no leader could ever be elected.
func (nm *nemesis) waitVoter(j int, via *proc) {
	nodes := nm.jc.nodes
	p := nodes[j]
	isVoter := func(s status) bool {
		return slices.ContainsFunc(s.Servers, func(sv server) bool { return sv.ID == p.raftAdv && sv.Suffrage == "Voter" })
	}
	if err := poll(time.Minute, func() error {
		st, ok := nm.jc.statuses()
		l := nm.jc.usableLeader(st, ok)
		switch {
		case l < 0:
			return fmt.Errorf("no usable leader")
		case !isVoter(st[l]):
			return fmt.Errorf("%s's configuration has no %s", nodes[l].name, p.raftAdv)
		case !ok[j] || !isVoter(st[j]):
			return fmt.Errorf("%s's own configuration does not list it yet", p.name)
		}
		return nil
	}); err != nil {
		nm.t.Errorf("nemesis: %s joined through %s: %v", p.name, via.name, err)
	}
}

func (nm *nemesis) describe(i int) string {
	s := nm.jc.nodes[i].name
	if nm.jc.leaderIndex() == i {
		s += "[leader]"
	}
	return s
}

func (nm *nemesis) act(ctx context.Context, kind string) {
	d := nm.between(nm.cfg.faultLen)
	nodes := nm.jc.nodes
	var desc string
	var undo func()
	switch kind {
	case "kill":
		victims := []int{nm.victim()}
		if len(nm.jc.members()) >= 5 && nm.rng.IntN(2) == 0 {
			victims = append(victims, nm.victim(victims...))
		}
		var names []string
		for _, i := range victims {
			names = append(names, nm.describe(i))
		}
		for _, i := range victims {
			nodes[i].kill()
		}
		desc = "SIGKILL " + strings.Join(names, ", ")
		undo = func() {
			for _, i := range victims {
				nodes[i].restart()
			}
		}
	case "replace":
		// A node loses its disk: it comes back with no state and -join,
		// so the leader must forget its old incarnation (and its votes)
		// before it may vote again (membership.go).
		i := nm.victim()
		desc = "replace " + nm.describe(i) + " (SIGKILL, wipe its data dir, rejoin with no state)"
		nodes[i].kill()
		if err := os.RemoveAll(nodes[i].dir); err != nil {
			nm.t.Errorf("wipe %s: %v", nodes[i].name, err)
		}
		via := nodes[nm.victim(i)]
		undo = func() {
			nodes[i].start("-join", via.http, "-join-timeout", "10m")
			nm.waitVoter(i, via)
		}
	case "member":
		// Membership under fire: /leave removes a voter (the leader half
		// the time), and for the fault's length the cluster runs one
		// short; then a node with no state joins through a follower:
		// either the one just removed, wiped (a replacement under the
		// same address), or another slot (an address new to the cluster,
		// or one removed earlier), while the removed one runs on as a
		// non-member, which must refuse everything.
		i := nm.victim()
		desc = "remove " + nm.describe(i) + " with /leave"
		if err := nm.leave(i); err != nil {
			nm.t.Errorf("nemesis: %v", err)
			undo = func() {}
			break
		}
		nm.jc.setMember(i, false)
		j := i
		if len(nm.out) > 0 && !nm.sameAddress {
			j = nm.out[0]
		}
		nm.out = append(nm.out, i)
		if j == i {
			desc += ", then wipe it and rejoin it through a follower"
			kind += "/same-address"
		} else {
			desc += fmt.Sprintf(", then %s joins with no state through a follower", nodes[j].name)
			kind += "/other-slot"
		}
		nm.sameAddress = !nm.sameAddress
		undo = func() { nm.addVoter(j) }
	case "oneway":
		// Messages lost in one direction only: the leader's to the
		// followers (they stop hearing it, it still hears them), or the
		// followers' to the leader (its heartbeats arrive, the answers
		// do not).
		l := nm.jc.leaderIndex()
		if l < 0 {
			l = nm.victim()
		}
		fromLeader := nm.rng.IntN(2) == 0
		var pairs [][2]int
		for _, i := range nm.jc.members() {
			switch {
			case i == l:
			case fromLeader:
				pairs = append(pairs, [2]int{l, i})
			default:
				pairs = append(pairs, [2]int{i, l})
			}
		}
		if fromLeader {
			desc = "lose every message " + nm.describe(l) + " sends to the others"
			kind += "/from-leader"
		} else {
			desc = "lose every message the others send to " + nm.describe(l)
			kind += "/to-leader"
		}
		nm.jc.net.cutOneWay(pairs...)
		undo = nm.jc.net.heal
	case "slow":
		i := nm.victim()
		desc = "delay every message to and from " + nm.describe(i) + " by 20-200 ms"
		nm.jc.net.slowDown(i)
		undo = nm.jc.net.heal
	case "pause":
		i := nm.jc.leaderIndex()
		if i < 0 || !nm.jc.isMember(i) {
			i = nm.victim()
		}
		desc = "SIGSTOP " + nm.describe(i)
		nodes[i].signal(syscall.SIGSTOP)
		undo = func() { nodes[i].signal(syscall.SIGCONT) }
	case "partition":
		i := nm.victim()
		mode := cutMode(nm.rng.IntN(2))
		desc = fmt.Sprintf("isolate %s (%s)", nm.describe(i), mode)
		nm.jc.net.isolate(i, mode)
		kind += "/" + mode.String()
		undo = nm.jc.net.heal
	case "split":
		// A minority that holds the leader half of the time.
		minority := []int{nm.victim()}
		for len(minority) < (len(nm.jc.members())-1)/2 {
			minority = append(minority, nm.victim(minority...))
		}
		sides := make([]int, len(nodes))
		var names []string
		for _, i := range minority {
			sides[i] = 1
			names = append(names, nm.describe(i))
		}
		mode := cutMode(nm.rng.IntN(2))
		desc = fmt.Sprintf("split %s from the rest (%s)", strings.Join(names, ", "), mode)
		nm.jc.net.partition(sides, mode)
		kind += "/" + mode.String()
		undo = nm.jc.net.heal
	}
	start := nm.h.now()
	nm.count(kind)
	line := fmt.Sprintf("nemesis at %v: %s for %v", time.Since(nm.began).Round(100*time.Millisecond), desc, d.Round(10*time.Millisecond))
	nm.t.Log(line)
	nm.mu.Lock()
	nm.schedule = append(nm.schedule, line)
	nm.mu.Unlock()
	sleep(ctx, d) // cut short when the run ends: every fault is undone below
	undo()
	nm.h.note("nemesis", desc, start, nm.h.now())
}

func (nm *nemesis) String() string {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	total := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(nm.counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, nm.counts[k]))
		total += nm.counts[k]
	}
	return fmt.Sprintf("%d actions: %s", total, strings.Join(parts, ", "))
}

// workload is the clients' side of the test.
type workload struct {
	jc   *jepsenCluster
	h    *history
	cfg  jepsenConfig
	hc   *http.Client
	keys []string
}

// findLeader returns the HTTP address of the node that leads, as far as any
// node knows, or else a random node (which will redirect or refuse).
func (w *workload) findLeader(rng *rand.Rand) string {
	nodes := w.jc.nodes
	for _, i := range rng.Perm(len(nodes)) {
		s, ok := w.jc.quickStatus(nodes[i].http)
		switch {
		case !ok:
		case s.State == "Leader":
			return nodes[i].http
		case s.LeaderHTTP != "":
			return s.LeaderHTTP
		}
	}
	return nodes[rng.IntN(len(nodes))].http
}

func (w *workload) client(ctx context.Context, idx int) {
	rng := rand.New(rand.NewPCG(w.cfg.seed, uint64(idx)+1))
	c := w.jc.kvClient(w.h, w.hc)
	c.stale = w.cfg.stale
	leader := ""
	for seq := 0; ctx.Err() == nil; seq++ {
		in := kvInput{Key: w.keys[rng.IntN(len(w.keys))]}
		switch r := rng.IntN(100); {
		case r < 50:
			in.Kind = kvGet
		case r < 90:
			in.Kind, in.Value = kvSet, fmt.Sprintf("c%d-%d", idx, seq)
		default:
			in.Kind = kvDelete
		}
		if leader == "" {
			leader = w.findLeader(rng)
		}
		addr := leader
		if in.Kind == kvGet && w.cfg.stale {
			addr = w.jc.nodes[rng.IntN(len(w.jc.nodes))].http
		}
		// Not bound to ctx: an operation under way when the run ends
		// finishes (or times out) normally.
		r, o, _ := c.do(context.Background(), addr, w.jc.names[addr], in)
		if addr != leader {
			continue
		}
		switch {
		case o == outcomeOK:
		case o == outcomeRefused && r.code == http.StatusTemporaryRedirect:
			leader = r.header.Get("X-Raft-Leader")
		default:
			// No leader known, or this node is gone: look again after a
			// moment, which is all an election needs.
			leader = ""
			sleep(ctx, time.Duration(50+rng.IntN(200))*time.Millisecond)
		}
	}
}

// finalReads reads every key with a strong read once the cluster is whole
// again, recorded like any other operation, so the checker also decides
// whether an acknowledged write was lost.
func (w *workload) finalReads(t *testing.T) map[string]kvOutput {
	t.Helper()
	rng := rand.New(rand.NewPCG(w.cfg.seed, 0))
	c := w.jc.kvClient(w.h, w.hc)
	got := map[string]kvOutput{}
	for _, k := range w.keys {
		waitFor(t, time.Minute, "a strong read of "+k, func() error {
			addr := w.findLeader(rng)
			in := kvInput{Kind: kvGet, Key: k}
			r, o, err := c.do(context.Background(), addr, w.jc.names[addr], in)
			if o != outcomeOK {
				return fmt.Errorf("%s: %s %d %q %v", addr, o, r.code, r.body, err)
			}
			out := kvOutput{Found: r.code == http.StatusOK, Value: strings.TrimSuffix(r.body, "\n")}
			if !out.Found {
				out.Value = ""
			}
			got[k] = out
			return nil
		})
	}
	return got
}

// waitQuiescent waits until every member has the same log, committed and
// applied: nothing a client sent can still change the data.
func (jc *jepsenCluster) waitQuiescent(t *testing.T) {
	t.Helper()
	waitFor(t, time.Minute, "every member to have applied the same log", func() error {
		var st []status
		for _, p := range jc.memberProcs() {
			s, ok := jc.quickStatus(p.http)
			if !ok {
				return fmt.Errorf("%s does not answer", p.name)
			}
			st = append(st, s)
		}
		for i := range st {
			s := st[i]
			if s.LastLogIndex != st[0].LastLogIndex || s.CommitIndex != s.LastLogIndex || s.AppliedIndex != s.CommitIndex {
				return fmt.Errorf("%s: last %d commit %d applied %d; %s: last %d", s.Node, s.LastLogIndex, s.CommitIndex, s.AppliedIndex, st[0].Node, st[0].LastLogIndex)
			}
		}
		return nil
	})
}

// waitSameMap waits until every member's own (stale) reads give want for
// every key, and its key count matches.
func (jc *jepsenCluster) waitSameMap(t *testing.T, want map[string]kvOutput) {
	t.Helper()
	present := 0
	for _, o := range want {
		if o.Found {
			present++
		}
	}
	waitFor(t, time.Minute, "every member to hold the map the strong reads saw", func() error {
		for _, p := range jc.memberProcs() {
			for k, o := range want {
				r, err := p.call("/get?key=" + k)
				if err != nil {
					return err
				}
				wantCode, wantBody := http.StatusNotFound, "\n"
				if o.Found {
					wantCode, wantBody = http.StatusOK, o.Value+"\n"
				}
				if r.code != wantCode || r.body != wantBody {
					return fmt.Errorf("%s has %s = %d %q, the strong read saw %d %q", p.name, k, r.code, r.body, wantCode, wantBody)
				}
			}
			if s, err := p.status(); err != nil || s.Keys != present {
				return fmt.Errorf("%s: %d keys, want %d (%v)", p.name, s.Keys, present, err)
			}
		}
		return nil
	})
}

// checkNonMembers: only members hold the map. The configuration lists
// exactly the members; a removed node that still runs refuses reads with
// 503 not a member and says so in /status; a parked slot does not run.
func (jc *jepsenCluster) checkNonMembers(t *testing.T, parked map[int]bool) {
	t.Helper()
	var want []string
	for _, p := range jc.memberProcs() {
		want = append(want, p.raftAdv)
	}
	slices.Sort(want)
	s, err := jc.memberProcs()[0].status()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var got []string
	for _, sv := range s.Servers {
		got = append(got, sv.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("configuration %v, want exactly the members %v", got, want)
	}
	for i, p := range jc.nodes {
		switch {
		case jc.isMember(i):
		case parked[i]:
			if p.running() {
				t.Errorf("%s runs, though the nemesis parked it", p.name)
			}
		default:
			if r, err := p.call("/get?key=k0"); err != nil || r.code != http.StatusServiceUnavailable || r.body != "not a member\n" {
				t.Errorf("removed %s answers a read with %d %q (%v), want 503 not a member", p.name, r.code, r.body, err)
			}
			if s, err := p.status(); err != nil || s.Member {
				t.Errorf("removed %s: /status member %v (%v), want false", p.name, s.Member, err)
			}
		}
	}
}

func TestJepsen(t *testing.T) { runJepsen(t, false) }

// TestJepsenTLS is the same fault test with mutual TLS on every Raft link,
// HTTPS and a token: the proxies cut and stall TLS streams as they do plain
// ones.
func TestJepsenTLS(t *testing.T) { runJepsen(t, true) }

func runJepsen(t *testing.T, secure bool) {
	if testing.Short() {
		t.Skip("the fault test takes a minute; skipped in -short mode")
	}
	beside(t)
	began := time.Now()
	cfg := jepsenConfigFromFlags()
	t.Logf("jepsen: %v (TLS and token: %v)", cfg, secure)
	jc := startJepsenCluster(t, cfg.nodes, secure)
	spare := jc.addSpare(t)
	t.Logf("jepsen: cluster of %d up after %v", cfg.nodes, time.Since(began).Round(100*time.Millisecond))

	h := &history{}
	tr := &http.Transport{MaxIdleConnsPerHost: 4 * cfg.clients}
	if jc.secure != nil {
		tr.TLSClientConfig = jc.secure.client.Transport.(*http.Transport).TLSClientConfig
	}
	defer tr.CloseIdleConnections()
	w := &workload{jc: jc, h: h, cfg: cfg, hc: &http.Client{
		Transport:     tr,
		Timeout:       cfg.reqTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	for i := 0; i < cfg.keys; i++ {
		w.keys = append(w.keys, fmt.Sprintf("k%d", i))
	}
	nm := &nemesis{t: t, jc: jc, h: h, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 1<<32)), counts: map[string]int{}, began: time.Now(),
		out: []int{spare}, parked: map[int]bool{spare: true}, sameAddress: secure}
	mon := &leaderMonitor{jc: jc, h: h, interval: 100 * time.Millisecond, logf: t.Logf}
	// A failed run leaves its record beside porcupine's visualization, so
	// it can be read without running it again.
	t.Cleanup(func() {
		if t.Failed() {
			writeRecord(t, "testdata", cfg, nm, mon)
		}
	})
	monCtx, stopMon := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		mon.run(monCtx)
	}()
	defer func() {
		stopMon()
		<-monDone
	}()

	// The workload: clients and nemesis until the deadline. Every fault is
	// undone before the nemesis returns.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < cfg.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, i)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		nm.run(ctx)
	}()
	wg.Wait()
	t.Logf("jepsen: workload done after %v; healing", time.Since(began).Round(100*time.Millisecond))

	// Healed: every node runs, nothing is cut or paused. Now the cluster
	// must come together and agree.
	jc.net.heal()
	nm.checkAlive()
	(&cluster{t: t, nodes: jc.memberProcs()}).waitConverged(2 * time.Minute)
	jc.waitQuiescent(t)
	final := w.finalReads(t)
	jc.waitSameMap(t, final)
	jc.checkNonMembers(t, nm.parked)
	stopMon()
	<-monDone
	t.Logf("jepsen: every node holds the same %d keys after %v; checking the history", len(final), time.Since(began).Round(100*time.Millisecond))

	rep := checkHistory(h, cfg.checkTimeout, "testdata")

	h.mu.Lock()
	c, okBy, unexpected := h.counts, h.okByKind, append([]string(nil), h.unexpected...)
	var why []string
	for _, k := range slices.Sorted(maps.Keys(h.openWhy)) {
		why = append(why, fmt.Sprintf("%s %d", k, h.openWhy[k]))
	}
	h.mu.Unlock()
	okTotal := okBy[kvGet] + okBy[kvSet] + okBy[kvDelete]
	verdict := rep.String()
	if cfg.stale {
		verdict += " [stale reads: reported, not failed on]"
	}
	t.Logf(`jepsen summary (%s):
  operations:  ok %d (get %d, set %d, delete %d), refused %d, not sent (node down) %d, indeterminate %d (%s), failed reads %d, unexpected replies %d
  nemesis:     %v
  leader:      %v
  checker:     %s
  wall time:   %v`,
		cfg, okTotal, okBy[kvGet], okBy[kvSet], okBy[kvDelete], c[outcomeRefused], c[outcomeUnsent], c[outcomeIndeterminate], strings.Join(why, ", "), c[outcomeFailedRead], len(unexpected),
		nm, mon, verdict, time.Since(began).Round(100*time.Millisecond))

	for _, u := range unexpected {
		t.Errorf("reply the contract does not allow: %s", u)
	}
	for _, p := range nm.problems {
		t.Errorf("node died without a fault: %s", p)
	}
	for _, p := range jc.nodes {
		log := p.readLog()
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if strings.Contains(log, bad) {
				t.Errorf("%s's log has %q", p.name, bad)
			}
		}
	}
	if okTotal < cfg.minOK || okBy[kvSet]+okBy[kvDelete] < cfg.minWrites || okBy[kvGet] < cfg.minReads {
		t.Errorf("too little succeeded to mean anything: %d ok (%d writes, %d reads); want at least %d (%d writes, %d reads)",
			okTotal, okBy[kvSet]+okBy[kvDelete], okBy[kvGet], cfg.minOK, cfg.minWrites, cfg.minReads)
	}
	nm.mu.Lock()
	for _, k := range nm.kinds() {
		n := 0
		for kind, c := range nm.counts {
			if kind == k || strings.HasPrefix(kind, k+"/") {
				n += c
			}
		}
		if n == 0 {
			t.Errorf("the nemesis never did %q", k)
		}
	}
	nm.mu.Unlock()
	switch {
	case cfg.stale:
		t.Logf("jepsen: stale reads: the checker says %s", rep.result)
	case rep.result == porcupine.Illegal:
		t.Errorf("the history is not linearizable: %s", rep)
	case rep.result != porcupine.Ok:
		t.Errorf("no verdict, which is not a pass: %s", rep)
	}
}

// writeRecord writes <dir>/jepsen-<time>-record.txt: the configuration
// (with the seed that repeats the choices), the nemesis schedule and the
// timeline of leaders and terms. It returns the path, or "".
func writeRecord(t testing.TB, dir string, cfg jepsenConfig, nm *nemesis, mon *leaderMonitor) string {
	nm.mu.Lock()
	schedule := append([]string(nil), nm.schedule...)
	nm.mu.Unlock()
	mon.mu.Lock()
	timeline := append([]string(nil), mon.timeline...)
	mon.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "jepsen run that failed: %s\n\nnemesis schedule (time since the workload began):\n", cfg)
	for _, l := range schedule {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "\nleaders and terms, as the monitor saw them (time since it began):\n")
	for _, l := range timeline {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	path := filepath.Join(dir, fmt.Sprintf("jepsen-%s-record.txt", time.Now().Format("20060102-150405.000")))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Logf("could not write the run's record: %v", err)
		return ""
	}
	t.Logf("the run's record (nemesis schedule, leaders and terms): %s", path)
	return path
}
