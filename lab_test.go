package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// ---- the LogStore wrapper, alone ----

// Raft deletes the head of the log after a snapshot and the tail when a
// follower's entries conflict with the leader's: only the tail is a
// truncation, reported with the distinct terms it dropped.
func TestTruncWatchStore(t *testing.T) {
	type report struct {
		from, to uint64
		terms    []uint64
	}
	var got []report
	mem := raft.NewInmemStore()
	s := &truncWatchStore{LogStore: mem, truncated: func(from, to uint64, terms []uint64) {
		got = append(got, report{from, to, terms})
	}}
	// Terms along the log: 1 1 2 2 2 3 3 4 4 4 ... then 5 up to 2000.
	termOf := func(i uint64) uint64 {
		switch {
		case i <= 2:
			return 1
		case i <= 5:
			return 2
		case i <= 7:
			return 3
		case i <= 10:
			return 4
		}
		return 5
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 2000; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: termOf(i), Type: raft.LogCommand})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Compaction: the head, as snapshot.go deletes it.
	must(s.DeleteRange(1, 2))
	if len(got) != 0 {
		t.Fatalf("compaction of the head reported as truncation: %v", got)
	}
	// A conflict: the tail from 4 on (terms 2, 3, 4 and 5) is dropped.
	must(s.DeleteRange(4, 2000))
	if want := []report{{4, 2000, []uint64{2, 3, 4, 5}}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tail deletion reported %v, want %v", got, want)
	}
	if last, _ := s.LastIndex(); last != 3 {
		t.Fatalf("last index %d after the truncation, want 3", last)
	}
	// The whole log at once is compaction (-trailing-logs 0), never a
	// truncation: a conflict always keeps the entry before it.
	must(s.DeleteRange(3, 3))
	if len(got) != 1 {
		t.Fatalf("deleting the whole log reported: %v", got)
	}
}

// ---- the HTTP surface, without Raft ----

// labStore is a memStore with two members and, unless lab is nil, a lab.
type labStore struct {
	memStore
	lab *lab
}

func (*labStore) Members() []server {
	return []server{
		{ID: "127.0.0.1:7000", Address: "127.0.0.1:7000", HTTP: "127.0.0.1:6000"},
		{ID: "127.0.0.1:7001", Address: "127.0.0.1:7001", HTTP: "127.0.0.1:6001"},
	}
}
func (s *labStore) Lab() *lab { return s.lab }

// The lab's routes answer as the contract says: POST only, the token, then
// the cross-site rule, then the peer and the delay; 404 on a node without
// -lab, whatever the request. /log takes the token too.
func TestLabHTTP(t *testing.T) {
	const token = "0123456789abcdef-lab"
	events := newHub("127.0.0.1:7000")
	st := &labStore{memStore: memStore{m: map[string]string{}}}
	st.lab = newLab("127.0.0.1:7000", st.Members, events, hclog.NewNullLogger())
	pol := newOriginPolicy([]string{"127.0.0.1:6000", "127.0.0.1:7000"}, nil, st.Members)
	h := newHandler(st, events, hclog.NewNullLogger(), security{token: token, origin: pol}, nil)
	plain := &labStore{memStore: memStore{m: map[string]string{}}}
	hPlain := newHandler(plain, newHub("x"), hclog.NewNullLogger(), security{token: token, origin: pol}, nil)

	const auth = "Bearer " + token
	for _, tc := range []struct {
		name           string
		h              http.Handler
		method, target string
		hdr            map[string]string
		code           int
		body           string
	}{
		{"no -lab", hPlain, "POST", "/lab/cut?peer=127.0.0.1:7001", nil, 404, ""},
		{"no -lab, heal", hPlain, "POST", "/lab/heal", map[string]string{"Authorization": auth}, 404, ""},
		{"GET", h, "GET", "/lab/cut?peer=127.0.0.1:7001", map[string]string{"Authorization": auth}, 405, "method not allowed\n"},
		{"no token", h, "POST", "/lab/cut?peer=127.0.0.1:7001", nil, 401, "unauthorized\n"},
		{"cross-site", h, "POST", "/lab/cut?peer=127.0.0.1:7001", map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, 403, "forbidden: cross-site request\n"},
		{"itself", h, "POST", "/lab/cut?peer=127.0.0.1:7000", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"unknown peer", h, "POST", "/lab/cut?peer=127.0.0.1:7009", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"no peer", h, "POST", "/lab/cut", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"bad query", h, "POST", "/lab/cut?peer=%zz", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"no delay", h, "POST", "/lab/slow?peer=127.0.0.1:7001", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"zero delay", h, "POST", "/lab/slow?peer=127.0.0.1:7001&delay=0s", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"delay too long", h, "POST", "/lab/slow?peer=127.0.0.1:7001&delay=10001ms", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"heal unknown", h, "POST", "/lab/heal?peer=127.0.0.1:7009", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"cut", h, "POST", "/lab/cut?peer=127.0.0.1:7001", map[string]string{"Authorization": auth, "Origin": "http://127.0.0.1:6001"}, 200, "ok\n"},
		{"slow", h, "POST", "/lab/slow?peer=127.0.0.1:7001&delay=10s", map[string]string{"Authorization": auth}, 200, "ok\n"},
		{"log: no token", h, "GET", "/log?from=1&to=2", nil, 401, "unauthorized\n"},
		{"log: no from", h, "GET", "/log?to=2", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"log: from > to", h, "GET", "/log?from=3&to=2", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"log: negative", h, "GET", "/log?from=-1&to=2", map[string]string{"Authorization": auth}, 400, "param error\n"},
		{"log: POST", h, "POST", "/log?from=1&to=2", map[string]string{"Authorization": auth}, 405, "method not allowed\n"},
		{"log", h, "GET", "/log?from=1&to=2", map[string]string{"Authorization": auth}, 200, `{"first_index":0,"last_index":0,"entries":[]}` + "\n"},
		{"log without -lab", hPlain, "GET", "/log?from=0&to=0", map[string]string{"Authorization": auth}, 200, `{"first_index":0,"last_index":0,"entries":[]}` + "\n"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		r.Host = "127.0.0.1:6000"
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		tc.h.ServeHTTP(w, r)
		if w.Code != tc.code || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("%s: %s %s = %d %q, want %d %q", tc.name, tc.method, tc.target, w.Code, w.Body.String(), tc.code, tc.body)
		}
	}
	if got := st.lab.status(); fmt.Sprint(got.Cut, got.Slow) != "[127.0.0.1:7001] map[127.0.0.1:7001:10s]" {
		t.Fatalf("lab status after cut and slow: %+v", got)
	}
	// A page served by the other member may call it (preflight answered).
	r := httptest.NewRequest("OPTIONS", "/lab/heal", nil)
	r.Host = "127.0.0.1:6000"
	r.Header.Set("Origin", "http://127.0.0.1:6001")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "http://127.0.0.1:6001" {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
}

// ---- real processes ----

// labPost sends POST path to p with no body, as a page's fetch would.
func labPost(p *proc, path string) reply {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+p.http+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	r, err := exchange(httpClient, req)
	if err != nil {
		p.t.Fatalf("%s POST %s: %v", p.name, path, err)
	}
	return r
}

// viaMember sends method path to via, which forwards it to the member to
// (X-Stcache-Forward), as the page does for a member it cannot reach.
func viaMember(t *testing.T, via, to *proc, method, path string) reply {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+via.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(forwardHeader, to.raftAdv)
	r, err := exchange(httpClient, req)
	if err != nil {
		t.Fatalf("%s %s via %s: %v", method, path, via.name, err)
	}
	return r
}

func labOK(p *proc, path string) {
	p.t.Helper()
	if r := labPost(p, path); r.code != 200 || r.body != "ok\n" {
		p.t.Fatalf("%s POST %s = %d %q", p.name, path, r.code, r.body)
	}
}

// logPage is /log's answer.
type logPage struct {
	FirstIndex uint64     `json:"first_index"`
	LastIndex  uint64     `json:"last_index"`
	Entries    []logEntry `json:"entries"`
}

func readLogView(p *proc, from, to uint64) logPage {
	p.t.Helper()
	r := p.get(fmt.Sprintf("/log?from=%d&to=%d", from, to))
	var lp logPage
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
		p.t.Fatalf("%s /log: %d %v %q", p.name, r.code, r.header, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &lp); err != nil {
		p.t.Fatalf("%s /log: %v: %q", p.name, err, r.body)
	}
	return lp
}

// others are c's nodes but not.
func others(c *cluster, not ...*proc) []*proc {
	var o []*proc
	for _, p := range c.nodes {
		if !slices.Contains(not, p) {
			o = append(o, p)
		}
	}
	return o
}

// heal undoes every fault on every node and waits for one leader again.
func (c *cluster) heal() {
	c.t.Helper()
	for _, p := range c.nodes {
		labOK(p, "/lab/heal")
	}
	c.waitConverged(30 * time.Second)
}

// The lab on three real nodes started with -lab: the log view, a one-way
// cut, a slow link, and the isolated leader of lesson 4 whose uncommitted
// writes are dropped once it is healed (the truncate event).
func TestLab(t *testing.T) {
	c := startCluster(t, 3, func(_ int, p *proc) { p.base = append(p.base, "-lab") })

	t.Run("log", func(t *testing.T) {
		l := c.leader()
		l.expect("/set?key=a&value=1", 200, "ok\n")
		long := strings.Repeat("é", 40) // 80 bytes: cut to 16 characters
		l.expect("/set?key=b&value="+long, 200, "ok\n")
		l.expect("/set?key=c&value=t&ttl=1h", 200, "ok\n")
		r := l.expect("/delete?key=a", 200, "ok\n")
		var last uint64
		fmt.Sscan(r.header.Get("X-Raft-Index"), &last)
		c.waitApplied(last)
		f := c.followers()[0]
		lp := readLogView(f, 0, 1<<40)
		if lp.FirstIndex != 1 || lp.LastIndex < last || len(lp.Entries) != int(lp.LastIndex) {
			t.Fatalf("%s /log: first %d last %d, %d entries; want 1, ≥%d, all", f.name, lp.FirstIndex, lp.LastIndex, len(lp.Entries), last)
		}
		types := map[string]bool{}
		var ops []logOp
		for i, e := range lp.Entries {
			if e.Index != uint64(i+1) || e.Term == 0 {
				t.Fatalf("entry %d: %+v", i, e)
			}
			types[e.Type] = true
			ops = append(ops, e.Ops...)
			if e.Type != "command" && len(e.Ops) > 0 {
				t.Fatalf("%s entry with ops: %+v", e.Type, e)
			}
		}
		for _, want := range []string{"configuration", "command", "noop", "barrier"} {
			if !types[want] {
				t.Errorf("no %s entry in %+v", want, lp.Entries)
			}
		}
		find := func(op, key string) logOp {
			for _, o := range ops {
				if o.Op == op && o.Key == key {
					return o
				}
			}
			t.Fatalf("no %s %s among %+v", op, key, ops)
			return logOp{}
		}
		if o := find("set", "a"); o.Value != "1" || o.ValueBytes != 0 {
			t.Errorf("set a: %+v", o)
		}
		if o := find("set", "b"); o.Value != strings.Repeat("é", 16) || o.ValueBytes != 80 {
			t.Errorf("set b: %+v (want 32 bytes of the value, value_bytes 80)", o)
		}
		if o := find("set", "c"); o.Value != "t" || o.Expires == "" {
			t.Errorf("set c with ttl: %+v", o)
		}
		find("delete", "a")
		find("set_peer", l.raftAdv)
		// A range: exactly its entries.
		if lp := readLogView(f, 2, 3); len(lp.Entries) != 2 || lp.Entries[0].Index != 2 || lp.Entries[1].Index != 3 {
			t.Errorf("/log?from=2&to=3: %+v", lp.Entries)
		}
		// Through another member, as the page reads a node it cannot reach.
		if r := viaMember(t, l, f, "GET", "/log?from=1&to=3"); r.code != 200 || r.header.Get("X-Relayed-From") != f.http || !strings.Contains(r.body, `"first_index":1,`) {
			t.Errorf("/log forwarded from %s to %s: %d %v %q", l.name, f.name, r.code, r.header, r.body)
		}
		f.expect("/log?from=3&to=2", 400, "param error\n")
		f.expect("/log?from=1", 400, "param error\n")
		if r := f.get("/lab/cut?peer=" + l.raftAdv); r.code != 405 {
			t.Errorf("GET /lab/cut: %d %q", r.code, r.body)
		}
	})

	t.Run("cut", func(t *testing.T) {
		l := c.leader()
		f := c.followers()[0]
		s := subscribe(t, l.name, l.http)
		// Through the other follower, as the page reaches a node it cannot.
		if r := viaMember(t, others(c, l, f)[0], l, "POST", "/lab/cut?peer="+f.raftAdv); r.code != 200 || r.body != "ok\n" {
			t.Fatalf("forwarded /lab/cut: %d %q", r.code, r.body)
		}
		s.next(5*time.Second, "lab event", func(e sseEvent) bool {
			return e.typ == "lab" && e.str("action") == "cut" && e.str("peer") == f.raftAdv
		})
		if st := l.mustStatus(); st.Lab == nil || !slices.Equal(st.Lab.Cut, []string{f.raftAdv}) {
			t.Fatalf("%s status lab: %+v", l.name, st.Lab)
		}
		// The other follower still makes a quorum: the write commits.
		r := l.expect("/set?key=cut&value=1", 200, "ok\n")
		var idx uint64
		fmt.Sscan(r.header.Get("X-Raft-Index"), &idx)
		s.next(5*time.Second, "failing heartbeat to "+f.name, func(e sseEvent) bool {
			return e.typ == "heartbeat" && e.str("peer") == f.raftAdv && e.data["ok"] == false
		})
		// Its connections to f were closed at the cut, not merely no
		// new ones dialled: f must not get the entry.
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if st, err := f.status(); err == nil && st.LastLogIndex >= idx {
				t.Fatalf("%s received entry %d through a cut link", f.name, idx)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.heal()
		waitValue(t, f, "cut", "1")
		if st := l.mustStatus(); st.Lab == nil || len(st.Lab.Cut) != 0 || len(st.Lab.Slow) != 0 {
			t.Fatalf("%s status lab after heal: %+v", l.name, st.Lab)
		}
	})

	t.Run("slow", func(t *testing.T) {
		const delay = 400 * time.Millisecond
		l := c.leader()
		f := c.followers()[0]
		labOK(l, "/lab/slow?peer="+f.raftAdv+"&delay="+delay.String())
		if st := l.mustStatus(); st.Lab == nil || st.Lab.Slow[f.raftAdv] != delay.String() {
			t.Fatalf("%s status lab: %+v", l.name, st.Lab)
		}
		start := time.Now()
		r := l.expect("/set?key=slow&value=1", 200, "ok\n")
		var idx uint64
		fmt.Sscan(r.header.Get("X-Raft-Index"), &idx)
		waitFor(t, 10*time.Second, f.name+" to store the entry", func() error {
			if st, err := f.status(); err != nil || st.LastLogIndex < idx {
				return fmt.Errorf("last log index %d (%v)", st.LastLogIndex, err)
			}
			return nil
		})
		if took := time.Since(start); took < delay {
			t.Fatalf("%s had the entry %v after the write, through a link slowed by %v", f.name, took, delay)
		}
		c.heal()
	})

	t.Run("isolated leader", func(t *testing.T) {
		l := c.leader()
		rest := c.followers()
		s := subscribe(t, l.name, l.http)
		oldTerm := l.mustStatus().Term
		l.expect("/set?key=k&value=before", 200, "ok\n")

		// The leader's side first, then writes to it at once (it keeps
		// taking them until its lease runs out), then the others' side.
		cutAt := time.Now()
		for _, f := range rest {
			labOK(l, "/lab/cut?peer="+f.raftAdv)
		}
		short := &http.Client{Timeout: 3 * time.Second, CheckRedirect: httpClient.CheckRedirect}
		var wg sync.WaitGroup
		answers := make([]string, 3)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/set?key=lost%d&value=x", l.http, i), nil)
				r, err := exchange(short, req)
				if err != nil {
					answers[i] = "no answer: " + err.Error()
				} else {
					answers[i] = fmt.Sprintf("%d %q", r.code, r.body)
				}
			}()
		}
		for _, f := range rest {
			labOK(f, "/lab/cut?peer="+l.raftAdv)
		}
		wg.Wait()
		for i, a := range answers {
			if strings.HasPrefix(a, "200") {
				t.Fatalf("write lost%d to the isolated leader was acknowledged: %s", i, a)
			}
		}
		t.Logf("the isolated leader's answers: %v", answers)
		// Appended, never committed: the writes are in its log, past its
		// commit index.
		st := l.mustStatus()
		var lost []uint64
		for _, e := range readLogView(l, st.CommitIndex+1, st.LastLogIndex).Entries {
			for _, o := range e.Ops {
				if strings.HasPrefix(o.Key, "lost") {
					lost = append(lost, e.Index)
				}
			}
		}
		if len(lost) == 0 {
			t.Fatalf("no write reached the isolated leader's log (status %+v)", st)
		}

		nl := waitLeader(t, 10*time.Second-time.Since(cutAt), rest, nil)
		t.Logf("%s leads %v after the cut", nl.name, time.Since(cutAt).Round(time.Millisecond))
		// The new leader's log reaches past the old leader's tail, so every
		// dropped index is filled with one of its entries.
		for i := 0; nl.mustStatus().CommitIndex < st.LastLogIndex; i++ {
			nl.expect(fmt.Sprintf("/set?key=after&value=%d", i), 200, "ok\n")
		}
		if got := l.mustStatus(); got.CommitIndex > st.CommitIndex {
			t.Fatalf("the isolated leader's commit index moved: %d → %d", st.CommitIndex, got.CommitIndex)
		}

		c.heal()
		ev := s.next(20*time.Second, "truncate", func(e sseEvent) bool { return e.typ == "truncate" })
		from, to := ev.num("from"), ev.num("to")
		terms, _ := json.Marshal(ev.data["terms"])
		if from > lost[0] || to != st.LastLogIndex || string(terms) != fmt.Sprintf("[%d]", oldTerm) {
			t.Fatalf("truncate event %v; want from ≤ %d (first lost write), to = %d (its last index), terms [%d]", ev.data, lost[0], st.LastLogIndex, oldTerm)
		}
		waitFor(t, 20*time.Second, l.name+" to follow "+nl.name, func() error {
			s, err := l.status()
			if err == nil && (s.State != "Follower" || s.Leader != nl.raftAdv || s.CommitIndex < to) {
				err = fmt.Errorf("%s, leader %q, commit %d", s.State, s.Leader, s.CommitIndex)
			}
			return err
		})
		// Where its own entries were, it now holds the new leader's.
		mine, theirs := readLogView(l, from, to), readLogView(nl, from, to)
		a, _ := json.Marshal(mine.Entries)
		b, _ := json.Marshal(theirs.Entries)
		if len(mine.Entries) != int(to-from+1) || string(a) != string(b) {
			t.Fatalf("%s's log at %d..%d:\n%s\nthe leader's:\n%s", l.name, from, to, a, b)
		}
		for _, e := range mine.Entries {
			if e.Term <= oldTerm {
				t.Fatalf("entry %+v at a dropped index is of the old term %d", e, oldTerm)
			}
		}
		for i := range answers {
			nl.expect(fmt.Sprintf("/get?key=lost%d&consistency=strong", i), 404, "\n")
			l.expect(fmt.Sprintf("/get?key=lost%d", i), 404, "\n")
		}
	})

	// Hand over: the leader tells the chosen follower to campaign at once;
	// a follower asked to hand over refuses as for a write. Snapshot now:
	// the node's last snapshot index reaches its applied index.
	t.Run("transfer and snapshot", func(t *testing.T) {
		c.heal()
		l := c.leader()
		to := others(c, l)[0]
		if r := labPost(to, "/lab/transfer?to="+l.raftAdv); r.code != 307 {
			t.Fatalf("transfer asked of a follower: %d %q, want its 307", r.code, r.body)
		}
		if r := labPost(l, "/lab/transfer?to="+l.raftAdv); r.code != 400 {
			t.Fatalf("transfer to itself: %d %q", r.code, r.body)
		}
		labOK(l, "/lab/transfer?to="+to.raftAdv)
		if nl := waitLeader(t, 10*time.Second, c.nodes, l); nl != to {
			t.Fatalf("%s leads after a hand-over to %s", nl.name, to.name)
		}
		r := to.expect("/set?key=snap&value=1", 200, "ok\n")
		idx := parseIndex(r.header.Get("X-Raft-Index"))
		if r := labPost(to, "/lab/snapshot"); r.code != 200 || !strings.HasPrefix(r.body, "ok") {
			t.Fatalf("snapshot now: %d %q", r.code, r.body)
		}
		if s, err := to.status(); err != nil || s.LastSnapshotIndex < idx {
			t.Fatalf("after snapshot now: last snapshot index %d < %d (%v)", s.LastSnapshotIndex, idx, err)
		}
	})
}

// A node without -lab answers 404 on /lab/ and has no "lab" in /status;
// /log serves it, without the entries compacted into a snapshot, and
// compaction is never reported as a truncation. -lab off loopback is
// refused.
func TestLabOffAndCompactedLog(t *testing.T) {
	out, code := runDaemon(t, "-lab", "-http", "192.0.2.1:6000", "-raft", "127.0.0.1:0")
	if code != 1 || !strings.Contains(lastLine(out), "-lab runs only on loopback: -http 192.0.2.1:6000 is not a loopback address") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("-lab on 192.0.2.1: exit %d, output:\n%s", code, out)
	}

	p := newProc(t, "node1")
	p.start("-bootstrap", "-trailing-logs", "2")
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	s := subscribe(t, p.name, p.http)
	if r := labPost(p, "/lab/cut?peer=x"); r.code != 404 {
		t.Fatalf("POST /lab/cut without -lab: %d %q", r.code, r.body)
	}
	if r := p.get("/status"); strings.Contains(r.body, `"lab"`) {
		t.Fatalf("/status without -lab: %s", r.body)
	}
	var first uint64
	i := 0
	waitFor(t, 30*time.Second, "the log to be compacted", func() error {
		i++
		p.expect(fmt.Sprintf("/set?key=k%d&value=v", i), 200, "ok\n")
		lp := readLogView(p, 0, 1<<40)
		first = lp.FirstIndex
		if len(lp.Entries) == 0 || lp.Entries[0].Index != first || lp.Entries[len(lp.Entries)-1].Index != lp.LastIndex {
			t.Fatalf("/log from %d to %d: %+v", lp.FirstIndex, lp.LastIndex, lp.Entries)
		}
		if first <= 1 {
			return fmt.Errorf("first index %d after %d writes", first, i)
		}
		return nil
	})
	// Every event so far, up to one published after the compaction.
	p.expect("/set?key=marker&value=1", 200, "ok\n")
	s.next(10*time.Second, "progress past the compaction", func(e sseEvent) bool {
		return e.typ == "progress" && e.num("keys") > 0 && e.num("last_log_index") > first+1
	})
	for _, e := range s.seen {
		if e.typ == "truncate" {
			t.Fatalf("compaction reported as truncation: %v", e.data)
		}
	}
	if lp := readLogView(p, 1, first-1); len(lp.Entries) != 0 {
		t.Fatalf("compacted entries shown: %+v", lp.Entries)
	}
}
