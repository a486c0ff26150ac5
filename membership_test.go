package main

// Identity and membership against real processes: host names as Raft
// addresses, two spellings of one endpoint, removed nodes, wiped nodes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// asLocalhost respells a 127.0.0.1:port address as localhost:port.
func asLocalhost(addr string) string {
	return strings.Replace(addr, "127.0.0.1:", "localhost:", 1)
}

func (c *cluster) byRaft(id string) *proc {
	for _, p := range c.nodes {
		if p.raftAdv == id {
			return p
		}
	}
	c.t.Fatalf("no node with raft address %s", id)
	return nil
}

// A name as the Raft address is the server ID and the configuration's
// address exactly as given, so leader hints work (they broke when the
// transport's resolved IP was looked up among IDs), and a join of another
// spelling of a member's endpoint changes nothing.
func TestHostnameRaftAddresses(t *testing.T) {
	c := startCluster(t, 3, func(i int, p *proc) {
		switch i {
		case 0: // -raft localhost:P
			p.raft = asLocalhost(p.raft)
			p.raftAdv = p.raft
		case 1: // -raft 127.0.0.1:P -raft-advertise localhost:P
			p.raftAdv = asLocalhost(p.raft)
		}
	})
	l := c.leader()
	for _, p := range c.nodes {
		waitFor(t, 20*time.Second, p.name+" to know every member as given", func() error {
			s, err := p.status()
			if err != nil {
				return err
			}
			if s.Leader != l.raftAdv || s.LeaderHTTP != l.http {
				return fmt.Errorf("leader %q http %q, want %q %q", s.Leader, s.LeaderHTTP, l.raftAdv, l.http)
			}
			if s.Raft != p.raftAdv {
				return fmt.Errorf("raft %q, want %q", s.Raft, p.raftAdv)
			}
			for _, sv := range s.Servers {
				if sv.ID != sv.Address || c.byRaft(sv.ID).http != sv.HTTP {
					return fmt.Errorf("server %+v: want address = ID as given, and its http", sv)
				}
			}
			return nil
		})
	}
	for _, f := range c.followers() {
		r := f.expect("/set?key=k&value=v", 307, "write method not allowed\n")
		if r.header.Get("X-Raft-Leader") != l.http {
			t.Fatalf("%s: hint %v", f.name, r.header)
		}
	}

	// The same endpoints spelt the other way are already members: ok, and
	// the configuration is untouched (before the fix, the leader's own IP
	// spelling removed the leader).
	before, _ := l.status()
	for _, p := range c.nodes {
		other := asLocalhost(p.raftAdv)
		if strings.HasPrefix(p.raftAdv, "localhost:") {
			other = strings.Replace(p.raftAdv, "localhost:", "127.0.0.1:", 1)
		}
		r := l.expect("/join?peerAddress="+other, 200, "ok")
		if r.header.Get("X-Raft-Index") != "" {
			t.Fatalf("join of %s (alias of %s) wrote entry %s", other, p.raftAdv, r.header.Get("X-Raft-Index"))
		}
	}
	after, _ := l.status()
	if after.State != "Leader" || fmt.Sprint(after.Servers) != fmt.Sprint(before.Servers) {
		t.Fatalf("configuration changed by alias joins:\nbefore %+v\nafter  %+v (state %s)", before.Servers, after.Servers, after.State)
	}
	// A node with no state cannot take the place of the live leader.
	leaderIP := strings.Replace(l.raftAdv, "localhost:", "127.0.0.1:", 1)
	r := l.get("/join?peerAddress=" + leaderIP + "&fresh=true")
	if r.code != 409 || !strings.HasPrefix(r.body, "conflict: ") {
		t.Fatalf("fresh join as the leader: %d %q, want 409 conflict", r.code, r.body)
	}
	l.expect("/join?peerAddress="+l.raftAdv+"&fresh=maybe", 400, "invalid fresh: want true or false\n")
	l.expect("/set?key=after&value=1", 200, "ok\n")
	if s, _ := l.status(); s.State != "Leader" || len(s.Servers) != 3 {
		t.Fatalf("after refused fresh join: %s with %d servers", s.State, len(s.Servers))
	}
}

// A node removed with /leave (a follower, then the leader itself) stops
// serving its frozen map: 503 "not a member", /status still answers, and a
// SIGTERM still stops it cleanly.
func TestRemovedNodeStopsServing(t *testing.T) {
	c := startCluster(t, 3, nil)
	l := c.leader()
	l.expect("/set?key=k&value=v1", 200, "ok\n")
	f := c.followers()
	waitValue(t, f[0], "k", "v1")

	r := l.expect("/leave?peerAddress="+f[0].raftAdv, 200, "ok")
	if r.header.Get("X-Raft-Index") == "" {
		t.Fatalf("leave answered without X-Raft-Index: %v", r.header)
	}
	notMember := func(p *proc) {
		t.Helper()
		waitFor(t, 10*time.Second, p.name+" to refuse as a non-member", func() error {
			r, err := p.call("/get?key=k")
			if err != nil {
				return err
			}
			if r.code != 503 || r.body != "not a member\n" {
				return fmt.Errorf("get: %d %q", r.code, r.body)
			}
			return nil
		})
		for _, path := range []string{"/set?key=k&value=v2", "/delete?key=k", "/get?key=k&consistency=strong", "/join?peerAddress=127.0.0.1:1", "/leave?peerAddress=127.0.0.1:1"} {
			p.expect(path, 503, "not a member\n")
		}
		s, err := p.status()
		if err != nil || s.Member {
			t.Fatalf("%s status: member=%v, %v", p.name, s.Member, err)
		}
	}
	notMember(f[0])
	l.expect("/set?key=k&value=v2", 200, "ok\n")

	// The leader removes itself: ok once committed, then it stops serving
	// and the remaining node leads alone.
	l.expect("/leave?peerAddress="+l.raftAdv, 200, "ok")
	notMember(l)
	nl := waitLeader(t, 30*time.Second, []*proc{f[1]}, nil)
	nl.expect("/get?key=k&consistency=strong", 200, "v2\n")
	if s, _ := nl.status(); len(s.Servers) != 1 {
		t.Fatalf("remaining configuration %+v", s.Servers)
	}
	// A removed node restarted from its own state is still not a member.
	f[0].stop()
	f[0].restart()
	notMember(f[0])
	f[0].stop()
	l.stop()
}

// A follower removed while it is cut off never receives the entry that
// removes it (raft tries once, then stops sending it anything), so its own
// configuration still lists it. Once it can reach the others again, it asks
// them, learns from the leader that it is gone, and refuses as a non-member
// instead of serving its frozen map as a member.
func TestRemovedWhileCutOff(t *testing.T) {
	jc := startJepsenCluster(t, 3, false)
	l := jc.leader()
	l.expect("/set?key=k&value=v1", 200, "ok\n")
	f := jc.followers()[0]
	waitValue(t, f, "k", "v1")
	fi := slices.Index(jc.nodes, f)
	jc.net.isolate(fi, cutReset)
	l.expect("/leave?peerAddress="+f.raftAdv, 200, "ok")
	l.expect("/set?key=k&value=v2", 200, "ok\n")
	jc.net.heal()
	waitFor(t, 20*time.Second, f.name+" to learn it was removed", func() error {
		r, err := f.call("/get?key=k")
		if err != nil {
			return err
		}
		if r.code != 503 || r.body != "not a member\n" {
			return fmt.Errorf("get: %d %q", r.code, r.body)
		}
		return nil
	})
	if s, err := f.status(); err != nil || s.Member {
		t.Fatalf("%s status: member=%v, %v", f.name, s.Member, err)
	}
	if !strings.Contains(f.readLog(), "the leader's configuration no longer lists this node") {
		t.Fatalf("%s learned it some other way; its log:\n%s", f.name, f.readLog())
	}
	l.expect("/get?key=k&consistency=strong", 200, "v2\n")
	// Its own state still lists it: restarted, it asks the others before
	// it serves (before, it served its map for 3 s and more).
	restartRemoved(t, f)
}

// A node whose disk was wiped must not vote with a forgotten history. The
// issue's case: entry X is on A (leader) and C, not on B (cut off); C's disk
// is wiped, A dies, B is healed, and C restarts with -join. Before the fix,
// C (empty configuration, so hashicorp/raft grants any vote) elected B, whose
// log lacks X, and X, acknowledged, was lost when A came back as B's
// follower. Now C keeps its Raft port shut until a leader has removed its old
// incarnation, so B cannot win; once A is back, A leads, C is replaced, and X
// is on every node.
func TestWipedNodeDoesNotVoteUntilReplaced(t *testing.T) {
	beside(t)
	jc := startJepsenCluster(t, 3, false)
	a := jc.leader()
	var b, cNode *proc
	ib := -1
	for i, p := range jc.nodes {
		switch {
		case p == a:
		case b == nil:
			b, ib = p, i
		default:
			cNode = p
		}
	}
	jc.net.isolate(ib, cutReset)
	a.expect("/set?key=x&value=acknowledged", 200, "ok\n")
	waitValue(t, cNode, "x", "acknowledged")

	cNode.kill()
	if err := os.RemoveAll(cNode.dir); err != nil {
		t.Fatal(err)
	}
	a.kill()
	cNode.start("-join", a.http, "-join-timeout", "3m")
	waitFor(t, 20*time.Second, "wiped "+cNode.name+" to serve http", func() error {
		_, err := cNode.status()
		return err
	})
	jc.net.heal()
	// Give B every chance to win C's vote: before the fix it led within
	// a few seconds.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if s, err := b.status(); err == nil && s.State == "Leader" {
			t.Fatalf("%s (without x) was elected with the vote of wiped %s", b.name, cNode.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.restart()
	jc.waitConverged(2 * time.Minute)
	l := jc.leader()
	l.expect("/get?key=x&consistency=strong", 200, "acknowledged\n")
	for _, p := range jc.nodes {
		waitValue(t, p, "x", "acknowledged")
	}
}

// The removal check asks other servers' /status at addresses taken from the
// replicated peer map: it sends them no token (/status needs none). A join
// still carries it to the address the operator gave.
func TestRemovalCheckSendsNoToken(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // path -> Authorization
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		if r.URL.Path == "/join" {
			text(w, http.StatusOK, "ok")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status{Node: "other", State: "Leader", Member: true, Term: 3})
	}))
	defer ts.Close()
	addr := ts.Listener.Addr().String()
	j := newJoiner(nil, testToken)
	st, err := j.status(context.Background(), addr)
	if err != nil || st.Node != "other" {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := j.ask(context.Background(), hclog.NewNullLogger(), addr, url.Values{"peerAddress": {"127.0.0.1:1"}}); err != nil {
		t.Fatalf("join: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if a := seen["/status"]; a != "" {
		t.Fatalf("the removal check sent Authorization %q to a peer's /status", a)
	}
	if a := seen["/join"]; a != "Bearer "+testToken {
		t.Fatalf("a join sent Authorization %q, want the token", a)
	}
}

// Joins from a stranger (issue 18): a join cannot point the cluster's
// clients at another HTTP address, nor evict a live member with fresh=true;
// a member that really moved, and a node that really lost its disk, still
// get in.
func TestHostileJoins(t *testing.T) {
	c := startCluster(t, 3, nil)
	l := c.leader()
	f := c.followers()
	l.expect("/set?key=k&value=v", 200, "ok\n")
	servers := func() string {
		t.Helper()
		s, err := l.status()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(s.Servers)
	}
	before := servers()
	// Every node still sends its clients to the leader's own address.
	leaderHTTPEverywhere := func() {
		t.Helper()
		for _, p := range c.nodes {
			waitFor(t, 10*time.Second, p.name+" to know the leader's http address", func() error {
				s, err := p.status()
				if err == nil && s.LeaderHTTP != l.http {
					err = fmt.Errorf("leader_http %q", s.LeaderHTTP)
				}
				return err
			})
		}
	}

	t.Run("httpAddress", func(t *testing.T) {
		// A raft port that accepts connections but is no stcached.
		fake, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer fake.Close()
		go func() {
			for {
				c, err := fake.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for _, q := range []string{
			// The reproduction: the leader's own entry.
			"peerAddress=" + l.raftAdv + "&httpAddress=evil.example:80",
			// An address that answers, as another server.
			"peerAddress=" + l.raftAdv + "&httpAddress=" + f[0].http,
			"peerAddress=" + f[0].raftAdv + "&httpAddress=" + f[1].http,
			// Nothing answers there.
			"peerAddress=" + f[0].raftAdv + "&httpAddress=" + freeAddr(t),
			// A new server whose HTTP address is another's.
			"peerAddress=" + fake.Addr().String() + "&httpAddress=" + f[1].http,
		} {
			for _, p := range []*proc{l, f[0]} { // a follower redirects; follow it as -join does
				r := getFollowing(t, p.http, "/join?"+q)
				if r.code != 409 || r.body != "conflict\n" || r.header.Get("X-Raft-Index") != "" {
					t.Fatalf("join %s via %s: %d %q %v, want 409 conflict", q, p.name, r.code, r.body, r.header)
				}
			}
		}
		if after := servers(); after != before {
			t.Fatalf("configuration changed by refused joins:\nbefore %s\nafter  %s", before, after)
		}
		leaderHTTPEverywhere()
		r := f[0].expect("/set?key=secret&value=v", 307, "write method not allowed\n")
		if loc := r.header.Get("Location"); loc != "http://"+l.http+"/set?key=secret&value=v" {
			t.Fatalf("follower redirects writes to %q", loc)
		}
		// A member re-joining with the address it has is a no-op.
		r = l.expect("/join?peerAddress="+f[0].raftAdv+"&httpAddress="+f[0].http, 200, "ok")
		if r.header.Get("X-Raft-Index") != "" {
			t.Fatalf("re-join with the same address wrote entry %s", r.header.Get("X-Raft-Index"))
		}
	})

	t.Run("moved", func(t *testing.T) {
		// f[0] restarts at a new HTTP address: its join says so, and is
		// believed, because the new address answers as f[0].
		p := f[0]
		p.stop()
		p.http = freeAddr(t)
		p.start()
		waitFor(t, 10*time.Second, p.name+" to serve at its new address", func() error {
			_, err := p.status()
			return err
		})
		r := l.expect("/join?peerAddress="+p.raftAdv+"&httpAddress="+p.http, 200, "ok")
		if r.header.Get("X-Raft-Index") == "" {
			t.Fatalf("moved member's join wrote nothing: %v", r.header)
		}
		for _, q := range c.nodes {
			waitFor(t, 10*time.Second, q.name+" to know "+p.name+"'s new address", func() error {
				s, err := q.status()
				if err != nil {
					return err
				}
				for _, sv := range s.Servers {
					if sv.ID == p.raftAdv && sv.HTTP != p.http {
						return fmt.Errorf("%s at %q", sv.ID, sv.HTTP)
					}
				}
				return nil
			})
		}
		p.expect("/get?key=k", 200, "v\n")
	})

	t.Run("fresh", func(t *testing.T) {
		before := servers()
		// A live follower, under its own spelling and another.
		for _, addr := range []string{f[1].raftAdv, asLocalhost(f[1].raftAdv)} {
			for _, p := range []*proc{l, f[0]} {
				r := getFollowing(t, p.http, "/join?peerAddress="+addr+"&fresh=true")
				if want := "conflict: " + f[1].raftAdv + " is alive\n"; r.code != 409 || r.body != want {
					t.Fatalf("fresh join of live %s via %s: %d %q, want 409 %q", addr, p.name, r.code, r.body, want)
				}
			}
		}
		if after := servers(); after != before {
			t.Fatalf("configuration changed by a refused fresh join:\nbefore %s\nafter  %s", before, after)
		}
		f[1].expect("/get?key=k", 200, "v\n")
		l.expect("/set?key=k&value=v2", 200, "ok\n")
		waitValue(t, f[1], "k", "v2")

		// The node really lost its disk: its -join is refused while the
		// leader still counts its old incarnation alive, and retried.
		f[1].kill()
		if err := os.RemoveAll(f[1].dir); err != nil {
			t.Fatal(err)
		}
		f[1].start("-join", f[0].http, "-join-timeout", "30s")
		c.waitConverged(60 * time.Second)
		waitValue(t, f[1], "k", "v2")
		if strings.Contains(f[1].readLog(), "join refused for now; retrying") {
			t.Logf("%s's first fresh join was refused (its old incarnation had just died) and retried", f[1].name)
		}
		leaderHTTPEverywhere()
	})
}

// Only a committed configuration says a node is out (issue 18). A follower
// that holds the entry removing it, uncommitted (the leader lost its quorum
// for the new configuration and stepped down), is still a member: before
// the fix it answered 503 "not a member" at once. Once a leader commits the
// removal, it learns so from that leader; restarted, it refuses from its
// first answer.
func TestUncommittedRemoval(t *testing.T) {
	c := startCluster(t, 3, nil)
	l := c.leader()
	f := c.followers()
	removed, other := f[0], f[1]
	l.expect("/set?key=k&value=v1", 200, "ok\n")
	waitValue(t, removed, "k", "v1")

	// The new configuration {l, other} cannot commit while other is
	// paused: the leader sends the entry to removed (its last message to
	// it), then steps down.
	other.signal(syscall.SIGSTOP)
	if r := l.get("/leave?peerAddress=" + removed.raftAdv); r.code < 500 {
		t.Fatalf("leave with its new quorum paused: %d %q, want 5xx (outcome unknown)", r.code, r.body)
	}
	lacksSelf := func(p *proc) error {
		s, err := p.status()
		if err != nil {
			return err
		}
		for _, sv := range s.Servers {
			if sv.ID == p.raftAdv {
				return fmt.Errorf("%s's configuration still lists it: %+v", p.name, s.Servers)
			}
		}
		return nil
	}
	waitFor(t, 10*time.Second, removed.name+" to hold its uncommitted removal", func() error { return lacksSelf(removed) })
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		r := removed.get("/get?key=k")
		if r.code != 200 || r.body != "v1\n" {
			t.Fatalf("%s with its removal uncommitted: get = %d %q, want 200 v1", removed.name, r.code, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s, err := removed.status(); err != nil || !s.Member {
		t.Fatalf("%s status: member=%v, %v", removed.name, s.Member, err)
	}

	// other wakes up and votes for l, whose log has the entry: l commits it.
	other.signal(syscall.SIGCONT)
	notMember := func(what string) {
		t.Helper()
		waitFor(t, 20*time.Second, removed.name+" to refuse as a non-member "+what, func() error {
			r, err := removed.call("/get?key=k")
			if err != nil {
				return err
			}
			if r.code != 503 || r.body != "not a member\n" {
				return fmt.Errorf("get: %d %q", r.code, r.body)
			}
			return nil
		})
	}
	notMember("once its removal is committed")
	nl := waitLeader(t, 20*time.Second, []*proc{l, other}, nil)
	nl.expect("/set?key=k&value=v2", 200, "ok\n")

	// Restarted, its first answer is already a refusal.
	restartRemoved(t, removed)
	notMember("after its restart")
}

// restartRemoved restarts a removed node from its data dir (without -join,
// which would ask to add it again) and checks that its first answer to a
// read, as soon as it serves, is a non-member's refusal: it decides before
// it serves.
func restartRemoved(t *testing.T, p *proc) {
	t.Helper()
	p.stop()
	p.start()
	var first reply
	waitFor(t, 20*time.Second, p.name+" to answer after its restart", func() error {
		r, err := p.call("/get?key=k")
		first = r
		return err
	})
	if first.code != 503 || first.body != "not a member\n" {
		t.Fatalf("%s's first answer after its restart: %d %q, want 503 not a member", p.name, first.code, first.body)
	}
}

// The membership decisions, step by step, for the cases a cluster cannot be
// steered into on cue: a leader's uncommitted configuration is no word, and
// winning an election clears a removal that a leader once reported.
func TestMembershipDecisions(t *testing.T) {
	sv := func(ids ...string) []raft.Server {
		var s []raft.Server
		for _, id := range ids {
			s = append(s, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id), Suffrage: raft.Voter})
		}
		return s
	}
	all, others := sv("a", "me", "c"), sv("a", "c")
	type step struct {
		what    string
		view    memberView
		word    *leaderWord // the leader's answer, if asked
		removed bool
		doubt   bool
	}
	word := func(w leaderWord) *leaderWord { return &w }
	for _, tc := range []struct {
		name     string
		hadState bool
		steps    []step
	}{
		{"live follower", false, []step{
			{what: "a member", view: memberView{latest: all, committed: all}},
			{what: "its removal uncommitted", view: memberView{latest: others, committed: all}, doubt: true},
			{what: "the leader's removal is uncommitted too", view: memberView{latest: others, committed: all}, word: word(noWord), doubt: true},
			{what: "the leader committed it", view: memberView{latest: others, committed: all}, word: word(wordGone), removed: true, doubt: true},
			{what: "and it is applied here", view: memberView{latest: others, committed: others}, removed: true},
		}},
		{"removal dropped", false, []step{
			{what: "a member", view: memberView{latest: all, committed: all}},
			{what: "its removal uncommitted", view: memberView{latest: others, committed: all}, doubt: true},
			{what: "the leader lists it", view: memberView{latest: others, committed: all}, word: word(wordListed), doubt: true},
			{what: "the entry is dropped", view: memberView{latest: all, committed: all}},
		}},
		{"cut off, then elected", false, []step{
			{what: "a member", view: memberView{latest: all, committed: all}},
			{what: "a leader's committed configuration lacks it", view: memberView{latest: all, committed: all}, word: word(wordGone), removed: true},
			{what: "still so", view: memberView{latest: all, committed: all}, removed: true},
			{what: "it wins an election", view: memberView{latest: all, committed: all, leading: true}},
			{what: "and leads on", view: memberView{latest: all, committed: all, leading: true}},
		}},
		{"gone until its configuration changes", false, []step{
			{what: "a member", view: memberView{latest: all, committed: all}},
			{what: "gone", view: memberView{latest: all, committed: all}, word: word(wordGone), removed: true},
			{what: "added again", view: memberView{latest: sv("a", "me", "c", "d"), committed: all}},
		}},
		{"restarted after removal", true, []step{
			{what: "first round: its log's latest lacks it", view: memberView{latest: others, committed: all}, removed: true, doubt: true},
			{what: "no leader answers", view: memberView{latest: others, committed: all}, word: word(noWord), removed: true, doubt: true},
			{what: "the leader confirms", view: memberView{latest: others, committed: all}, word: word(wordGone), removed: true, doubt: true},
		}},
		{"restarted with its removal dropped", true, []step{
			{what: "first round", view: memberView{latest: others}, removed: true, doubt: true},
			{what: "the leader lists it", view: memberView{latest: others}, word: word(wordListed), doubt: true},
		}},
		{"restarted, catching up", true, []step{
			{what: "first round: no snapshot", view: memberView{latest: all}},
			{what: "applying the bootstrap's configuration", view: memberView{latest: all, committed: sv("a")}, doubt: true},
			{what: "the leader lists it", view: memberView{latest: all, committed: sv("a", "c")}, word: word(wordListed), doubt: true},
			{what: "its own addition applied", view: memberView{latest: all, committed: all}},
		}},
		{"removed, then added again", false, []step{
			{what: "a member", view: memberView{latest: all, committed: all}},
			{what: "its removal applied", view: memberView{latest: others, committed: others}, removed: true},
			{what: "added again, not committed yet", view: memberView{latest: all, committed: others}, doubt: true},
			{what: "the addition applied", view: memberView{latest: all, committed: all}},
		}},
		{"joining", false, []step{
			{what: "an older snapshot's configuration", view: memberView{latest: others, committed: others}},
			{what: "added", view: memberView{latest: all, committed: all}},
		}},
		{"leader removed itself", false, []step{
			{what: "leading", view: memberView{latest: all, committed: all, leading: true}},
			{what: "raft stopped after the commit", view: memberView{latest: others, committed: all, shutDown: true}, removed: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &membership{self: "me", hadState: tc.hadState}
			for _, s := range tc.steps {
				removed, doubt := m.decide(s.view)
				if s.word != nil {
					removed = m.heard(*s.word, s.view.latest)
				}
				if removed != s.removed || doubt != s.doubt {
					t.Fatalf("%s: removed %v doubt %v, want %v %v", s.what, removed, doubt, s.removed, s.doubt)
				}
			}
		})
	}
}

// A node restarted from its own state re-joins in the background, retrying
// while its -join address does not answer. If it leads meanwhile and
// commits its own removal, its raft stops for good: its raft port must
// close, and its re-join stop too. Before the fix, once the -join address
// answered, the leader behind it added the node back as a voter that never
// answers again (TestJepsen: two nodes down of four voters, no quorum ever
// after).
func TestRejoinAfterOwnRemoval(t *testing.T) {
	c := startCluster(t, 3, func(i int, p *proc) { p.base = append(p.base, "-lab") })
	l := c.leader()
	f := c.followers()
	a, b := f[0], f[1]
	// a's -join address: where b will answer later.
	later := freeAddr(t)
	a.stop()
	a.start("-join", later)
	waitFor(t, 20*time.Second, a.name+" to follow "+l.name+" again", func() error {
		s, err := a.status()
		if err != nil || s.Leader != l.raftAdv {
			return fmt.Errorf("leader %q, %v", s.Leader, err)
		}
		return nil
	})
	labOK(l, "/lab/transfer?to="+a.raftAdv)
	waitLeader(t, 10*time.Second, []*proc{a}, nil)
	a.expect("/leave?peerAddress="+a.raftAdv, 200, "ok")

	// Its raft port closes: an operator's /join of it is refused, as for
	// any address nothing listens on, instead of adding a voter that
	// never votes.
	waitFor(t, 10*time.Second, a.name+"'s raft port to close", func() error {
		conn, err := net.DialTimeout("tcp", a.raft, time.Second)
		if err == nil {
			conn.Close()
			return errors.New("still accepting connections")
		}
		return nil
	})
	nl := waitLeader(t, 30*time.Second, []*proc{l, b}, nil)
	if r := nl.get("/join?peerAddress=" + a.raftAdv); r.code != 502 {
		t.Fatalf("/join of %s, removed and its raft stopped: %d %q, want 502", a.name, r.code, r.body)
	}

	// b restarts where a's re-join knocks.
	b.stop()
	b.http = later
	b.restart()
	nl = waitLeader(t, 30*time.Second, []*proc{l, b}, nil)
	nl.expect("/set?key=k&value=v", 200, "ok\n")
	sinceStart := func() string {
		log := a.readLog()
		return log[strings.LastIndex(log, "=== start"):]
	}
	waitFor(t, 15*time.Second, a.name+"'s re-join to end", func() error {
		if s, err := nl.status(); err == nil && s.ConfigurationCommitted {
			for _, sv := range s.Servers {
				if sv.ID == a.raftAdv {
					t.Fatalf("%s, removed and its raft stopped, was added back: %+v", a.name, s.Servers)
				}
			}
		}
		if !strings.Contains(sinceStart(), "re-join failed") {
			return errors.New("still re-joining")
		}
		return nil
	})
	if log := sinceStart(); strings.Contains(log, "joined cluster") {
		t.Fatalf("%s re-joined after its removal:\n%s", a.name, log)
	}
}
