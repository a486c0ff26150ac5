package main

// Bounded memory and expiry against real processes.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// post sends a /set (or other) form as a POST body: values too large for a
// URL go this way.
func (p *proc) post(path string, form url.Values) reply {
	p.t.Helper()
	r, err := postForm(p.http, path, form)
	if err != nil {
		p.t.Fatalf("%s POST %s: %v", p.name, path, err)
	}
	return r
}

// postForm sends form to http://addr+path as a POST body (never resent
// behind the caller's back, unlike a GET, so an answer is about one try).
func postForm(addr, path string, form url.Values) (reply, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(form.Encode()))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return exchange(httpClient, req)
}

func (p *proc) mustStatus() status {
	p.t.Helper()
	s, err := p.status()
	if err != nil {
		p.t.Fatalf("%s status: %v", p.name, err)
	}
	return s
}

// waitApplied waits until every running node has applied index.
func (c *cluster) waitApplied(index uint64) {
	c.t.Helper()
	for _, p := range c.nodes {
		if !p.running() {
			continue
		}
		waitFor(c.t, 20*time.Second, fmt.Sprintf("%s to apply %d", p.name, index), func() error {
			s, err := p.status()
			if err != nil {
				return err
			}
			if s.AppliedIndex < index {
				return fmt.Errorf("applied %d", s.AppliedIndex)
			}
			return nil
		})
	}
}

// rss is a process's resident set size in bytes, from /proc.
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A 1 MiB cap: the leader refuses (507) the write that would pass it, and
// nothing refused is applied anywhere; bytes stay under the cap on every
// node, also with many writers racing for the last room; deletes and
// shrinking overwrites are always taken, and free room at once.
func TestMemoryCap(t *testing.T) {
	const limit = 1 << 20
	c := startCluster(t, 3, func(_ int, p *proc) { p.base = []string{"-max-memory", "1MiB"} })
	l := c.leader()
	value := strings.Repeat("v", 64<<10)
	var last uint64
	full := -1
	for i := 0; i < 40 && full < 0; i++ {
		r := l.post("/set", url.Values{"key": {fmt.Sprint("k", i)}, "value": {value}})
		switch {
		case r.code == 200:
			last, _ = strconv.ParseUint(r.header.Get("X-Raft-Index"), 10, 64)
		case r.code == 507 && r.body == "cache full\n":
			full = i
		default:
			t.Fatalf("set k%d: %d %q", i, r.code, r.body)
		}
	}
	if full < 0 {
		t.Fatal("40 writes of 64 KiB fit under 1 MiB")
	}
	// A follower redirects, as for any write; a 400 or 413 comes before 507.
	f := c.followers()[0]
	f.expect("/set?key=x&value=y", 307, "write method not allowed\n")
	l.expect("/set?key=x", 400, "param error\n")
	if r := l.post("/set", url.Values{"key": {"big"}, "value": {strings.Repeat("b", maxValueBytes+1)}}); r.code != 413 {
		t.Fatalf("oversized value at the cap: %d", r.code)
	}
	c.waitApplied(last)
	refused := fmt.Sprint("k", full)
	for _, p := range c.nodes {
		s := p.mustStatus()
		if charged(s) > limit || s.Bytes == 0 || s.Keys != full {
			t.Fatalf("%s: %d keys, %d bytes; want %d keys under %d bytes", p.name, s.Keys, s.Bytes, full, limit)
		}
		p.expect("/get?key="+refused, 404, "\n")
	}
	// A shrinking overwrite and a delete are taken at the cap, and the
	// delete's room is there at once.
	l.expect("/set?key=k0&value=small", 200, "ok\n")
	l.expect("/delete?key=k1", 200, "ok\n")
	if r := l.post("/set", url.Values{"key": {refused}, "value": {value}}); r.code != 200 {
		t.Fatalf("set after freeing room: %d %q", r.code, r.body)
	}

	// Writers racing for the last room: the leader counts writes in flight,
	// and Apply holds the cap whatever gets past it: no node passes it.
	var wg sync.WaitGroup
	var okN, fullN atomic.Int32
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				resp, err := httpClient.Post("http://"+l.http+"/set", "application/x-www-form-urlencoded",
					strings.NewReader(url.Values{"key": {fmt.Sprintf("w%d-%d", w, i)}, "value": {value}}.Encode()))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					okN.Add(1)
				case 507:
					fullN.Add(1)
				default:
					t.Errorf("racing set: %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	if fullN.Load() == 0 {
		t.Fatalf("128 racing writes of 64 KiB all fit (%d ok)", okN.Load())
	}
	s := l.mustStatus()
	c.waitApplied(s.CommitIndex)
	for _, p := range c.nodes {
		if st := p.mustStatus(); charged(st) > limit || st.Bytes != s.Bytes {
			t.Fatalf("%s holds %d bytes in %d keys; leader %d bytes, cap %d", p.name, st.Bytes, st.Keys, s.Bytes, limit)
		}
	}
}

// charged is what the cap counts of a node's map (Apply's charge): its
// bytes plus entryOverhead per key. Read from /status only when no write is
// being applied: keys and bytes are read one after the other.
func charged(s status) int64 { return s.Bytes + int64(s.Keys)*entryOverhead }

// 20 MiB of values thrown at a 1 MiB cap leave every node's memory where
// it was, give or take the garbage of the refused requests.
func TestMemoryCapBoundsRSS(t *testing.T) {
	c := startCluster(t, 3, func(_ int, p *proc) { p.base = []string{"-max-memory", "1MiB"} })
	l := c.leader()
	before := map[*proc]int64{}
	for _, p := range c.nodes {
		before[p] = rss(t, p.pid())
	}
	value := strings.Repeat("z", 512<<10)
	for i := range 40 { // 20 MiB
		r := l.post("/set", url.Values{"key": {fmt.Sprint("big", i)}, "value": {value}})
		if r.code != 200 && r.code != 507 {
			t.Fatalf("set: %d %q", r.code, r.body)
		}
	}
	s := l.mustStatus()
	c.waitApplied(s.CommitIndex)
	for _, p := range c.nodes {
		grew := rss(t, p.pid()) - before[p]
		t.Logf("%s: RSS %d MiB -> grew %d MiB, holds %d bytes", p.name, before[p]>>20, grew>>20, p.mustStatus().Bytes)
		if grew > rssGrowthBound {
			t.Fatalf("%s's RSS grew by %d MiB writing 20 MiB into a 1 MiB cap (bound %d MiB)", p.name, grew>>20, rssGrowthBound>>20)
		}
	}
}

// rssGrowthBound: the map's 1 MiB, a snapshot's copy of it, the Raft log's
// cache and the garbage of refused request bodies before the GC runs. The
// race detector, which the tests' daemons run under, multiplies what the
// heap costs; without it growth is a fraction of this.
const rssGrowthBound = 64 << 20

// ttl=1s: gone from every node's reads, keys, bytes and next snapshot
// within seconds; a restart (of one node, then all) does not revive it; a
// set without ttl clears one; bad ttls are 400s.
func TestTTL(t *testing.T) {
	c := startCluster(t, 3, nil)
	l := c.leader()
	for _, bad := range []string{"0.5s", "abc", "-1s", "0", "1"} {
		l.expect("/set?key=a&value=1&ttl="+url.QueryEscape(bad), 400, "param error\n")
	}
	l.expect("/set?key=a&value=1&ttl=1s", 200, "ok\n")
	l.expect("/set?key=b&value=2", 200, "ok\n")
	l.expect("/set?key=c&value=3&ttl=1h", 200, "ok\n")
	l.expect("/set?key=d&value=4&ttl=1s", 200, "ok\n")
	l.expect("/set?key=d&value=5", 200, "ok\n") // clears d's deadline
	l.expect("/get?key=a&consistency=strong", 200, "1\n")
	stopped := c.followers()[0]
	stopped.stop() // misses the reaping; must not revive a on restart
	for _, p := range c.nodes {
		if !p.running() {
			continue
		}
		waitFor(t, 10*time.Second, p.name+" to drop a", func() error {
			r, err := p.call("/get?key=a")
			if err != nil {
				return err
			}
			s, err := p.status()
			if err != nil {
				return err
			}
			if r.code != 404 || s.Keys != 3 || s.Bytes != 6 {
				return fmt.Errorf("get a: %d; %d keys, %d bytes", r.code, s.Keys, s.Bytes)
			}
			return nil
		})
	}
	l.expect("/get?key=a&consistency=strong", 404, "\n")
	l.expect("/get?key=d&consistency=strong", 200, "5\n")
	stopped.restart()
	waitValue(t, stopped, "c", "3")
	stopped.expect("/get?key=a", 404, "\n")
	// The next snapshot holds c's deadline and not a.
	l.expect("/set?key=e&value=6", 200, "ok\n")
	l.expect("/set?key=f&value=7", 200, "ok\n")
	fillers := 0
	for _, p := range c.nodes {
		fillers += waitSnapshot(t, p, l, func(m map[string]string) error {
			if _, ok := m["a"]; ok || m["f"] != "7" || m[ttlKeyPrefix+"c"] == "" || m[ttlKeyPrefix+"d"] != "" {
				return fmt.Errorf("snapshot %q", m)
			}
			return nil
		})
	}
	// The whole cluster restarts: c keeps its deadline, a stays gone.
	c.restartAll()
	nl := c.leader()
	nl.expect("/get?key=a&consistency=strong", 404, "\n")
	nl.expect("/get?key=c&consistency=strong", 200, "3\n")
	want := 5 // b c d e f
	if fillers > 0 {
		want++
	}
	if s := nl.mustStatus(); s.Keys != want {
		t.Fatalf("after restart: %d keys, want %d (b c d e f, and filler if written)", s.Keys, want)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "1KiB": 1 << 10, "1MiB": 1 << 20, "1GiB": 1 << 30, "512 MiB": 512 << 20, "2GB": 2 << 30, "10B": 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1TB", "-1", "1.5GiB", "GiB", "9999999999999GiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

// capOp is one write of TestMemoryCapRaces and how it was answered.
type capOp struct {
	key, value string // value "" for a delete
	start, end time.Time
	outcome    string // "ok" (200), "full" (507), "refused" (307/503), "unknown"
}

// Sets, overwrites and deletes of the same ten keys, from many clients at
// once and across a leadership hand-over, with a 64 KiB cap: no node ever
// holds more than the cap (polled during the run, the old leader's replay
// after its restart included), all end with the same map, no 507'd value is
// ever there, and every acknowledged write is there unless a write of its
// key that may have come after it explains its absence.
//
// Values of 8-8.3 KiB: seven keys fit, eight do not, so the map sits at
// the cap, and 1 write in 20 is a delete: each one frees room that the
// next writers race for, while sets of the deleted key, admitted just
// before it applied, are in flight. A leader that admits writes against
// its own view of the map (an overwrite charged the difference, then the
// delete applies first) overshoots there: before Apply held the cap, this
// test saw a node over it in 9 runs of 10, in 40-314 polls each.
func TestMemoryCapRaces(t *testing.T) {
	const limit, keys, writers = 64 << 10, 10, 24
	c := startCluster(t, 3, func(_ int, p *proc) { p.base = []string{"-max-memory", "64KiB"} })
	l := c.leader()

	// The watchers: each node's bytes, as often as it answers (one poller
	// per node, so a slow answer from one does not thin out the others).
	peaks := make([]atomic.Int64, len(c.nodes))
	var polls atomic.Int64
	var over atomic.Value  // the first time a node held more than the cap
	var overs atomic.Int64 // how many polls saw that
	var watchers sync.WaitGroup
	stopWatch := make(chan struct{})
	for i, p := range c.nodes {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			for {
				select {
				case <-stopWatch:
					return
				default:
				}
				s, err := p.status()
				if err != nil { // down for the hand-over: a client's back-off
					time.Sleep(20 * time.Millisecond)
					continue
				}
				polls.Add(1)
				if s.Bytes > peaks[i].Load() {
					peaks[i].Store(s.Bytes)
				}
				if s.Bytes > limit {
					overs.Add(1)
					over.CompareAndSwap(nil, fmt.Sprintf("%s held %d bytes (applied index %d)", p.name, s.Bytes, s.AppliedIndex))
				}
			}
		}()
	}

	var acked atomic.Int64
	histories := make([][]capOp, writers)
	stopWriters := make(chan struct{})
	began := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			target := l.http
			for i := 0; ; i++ {
				select {
				case <-stopWriters:
					return
				default:
				}
				op := capOp{key: fmt.Sprint("k", rng.IntN(keys))}
				form := url.Values{"key": {op.key}}
				path := "/delete"
				if rng.IntN(20) != 0 { // 1 in 20 deletes
					op.value = crashValue(fmt.Sprintf("w%d-%d", w, i), 8<<10+rng.IntN(300)) // unique
					form.Set("value", op.value)
					path = "/set"
				}
				op.start = time.Now()
				r, err := postForm(target, path, form)
				op.end = time.Now()
				switch {
				case err == nil && r.code == 200 && r.body == "ok\n":
					op.outcome = "ok"
					acked.Add(1)
				case err == nil && r.code == 507 && r.body == "cache full\n":
					op.outcome = "full"
				case err == nil && (r.code == 307 || r.code == 503) && r.body == "write method not allowed\n":
					op.outcome = "refused"
				default:
					op.outcome = "unknown"
				}
				histories[w] = append(histories[w], op)
				// Follow a hint; a node that is down or knows no leader
				// sends us to whoever leads now (the pause is a client's
				// back-off, not synchronisation).
				if h := r.header.Get("X-Raft-Leader"); err == nil && h != "" {
					target = h
				} else if err != nil || r.code == 503 {
					target = nextTarget(c, target)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	untilAcked := func(n int64, what string) {
		t.Helper()
		waitFor(t, 30*time.Second, what, func() error {
			if a := acked.Load(); a < n {
				return fmt.Errorf("%d writes acknowledged", a)
			}
			return nil
		})
	}
	untilAcked(400, "writes before the hand-over")
	l.stop() // SIGTERM: it hands leadership over first
	nl := waitLeader(t, 20*time.Second, c.nodes, l)
	untilAcked(acked.Load()+400, "writes to the new leader "+nl.name)
	l.restart() // replays the log with the writers still at it
	untilAcked(acked.Load()+300, "writes while "+l.name+" catches up")
	close(stopWriters)
	wg.Wait()

	c.waitApplied(c.leader().mustStatus().CommitIndex)
	close(stopWatch)
	watchers.Wait()
	if msg := over.Load(); msg != nil {
		t.Fatalf("over the %d-byte cap: %s; %d of %d polls saw a node over it", limit, msg, overs.Load(), polls.Load())
	}

	// Every node holds the same map, within the cap. raft's applied index
	// counts the entries handed to the FSM, which may still be applying
	// them (it failed 1 run in 10 on reading node1 twice: "5 keys, 41779
	// bytes" then "41948"), so the maps are compared once they hold still.
	final := map[string]reply{}
	var statuses []status
	waitFor(t, 20*time.Second, "every node's map to hold still and agree", func() error {
		prev := statuses
		statuses = nil
		for _, p := range c.nodes {
			st, err := p.status()
			if err != nil {
				return err
			}
			statuses = append(statuses, st)
		}
		for i, st := range statuses {
			if st.Bytes != statuses[0].Bytes || st.Keys != statuses[0].Keys {
				return fmt.Errorf("%s: %d keys, %d bytes; %s %d keys, %d bytes", c.nodes[i].name, st.Keys, st.Bytes, c.nodes[0].name, statuses[0].Keys, statuses[0].Bytes)
			}
			if prev == nil || prev[i].Bytes != st.Bytes || prev[i].Keys != st.Keys || prev[i].AppliedIndex != st.AppliedIndex {
				return fmt.Errorf("%s still changing", c.nodes[i].name)
			}
		}
		return nil
	})
	for i, p := range c.nodes {
		if st := statuses[i]; charged(st) > limit {
			t.Fatalf("%s: %d keys, %d bytes; cap %d", p.name, st.Keys, st.Bytes, limit)
		}
		for k := range keys {
			key := fmt.Sprint("k", k)
			r := p.get("/get?key=" + key)
			if other, ok := final[key]; !ok {
				final[key] = r
			} else if r.code != other.code || r.body != other.body {
				t.Fatalf("%s: %s reads %d (%d bytes), another node %d (%d bytes)", p.name, key, r.code, len(r.body), other.code, len(other.body))
			}
		}
	}

	// Each key's final state is one write's, and no acknowledged write of
	// that key began after that write was answered (it would have come
	// after it in any order the cluster could have chosen).
	byKey := map[string][]capOp{}
	count := map[string]int{}
	for _, h := range histories {
		for _, op := range h {
			byKey[op.key] = append(byKey[op.key], op)
			count[op.outcome]++
		}
	}
	var peakList []int64
	for i := range peaks {
		peakList = append(peakList, peaks[i].Load())
	}
	t.Logf("writes: %v; %d polls of /status in %v; peak bytes per node: %v", count, polls.Load(), time.Since(began).Round(time.Millisecond), peakList)
	if count["ok"] == 0 || count["full"] == 0 {
		t.Fatalf("want both acknowledged and 507 writes: %v", count)
	}
	for key, ops := range byKey {
		r := final[key]
		held := r.code == 200
		last := -1 // the write whose result the nodes hold
		for i, op := range ops {
			mine := held && op.value != "" && r.body == op.value+"\n"
			if op.outcome != "ok" && op.outcome != "unknown" {
				if mine {
					t.Fatalf("%s holds a value whose write was answered %s", key, op.outcome)
				}
				continue
			}
			// Absent: the delete answered last explains the most.
			if mine || !held && op.value == "" && (last < 0 || op.end.After(ops[last].end)) {
				last = i
			}
		}
		if held && last < 0 {
			t.Fatalf("%s holds %d bytes that no write sent", key, len(r.body))
		}
		for i, op := range ops {
			if op.outcome != "ok" || i == last || !held && op.value == "" {
				continue
			}
			if last < 0 || op.start.After(ops[last].end) {
				t.Fatalf("%s: acknowledged write (%d bytes, %s-%s) lost: the key reads %d (%d bytes)", key, len(op.value),
					op.start.Format(time.StampMicro), op.end.Format(time.StampMicro), r.code, len(r.body))
			}
		}
	}
}

// The leader's early filter counts what Apply counts: a key's bytes plus
// entryOverhead, for the keys held and the writes in flight alike. Room for
// two one-byte keys and their overhead takes two writes, not a third, and
// an overwrite that does not grow the map is taken at the cap.
func TestReserveCountsOverhead(t *testing.T) {
	n := &node{cfg: nodeConfig{MaxMemory: 2 * (2 + entryOverhead)}, cache: newCache()}
	held, err := n.reserve(command{op: opSet, key: "a", value: "1"})
	if err != nil || held != 2+entryOverhead {
		t.Fatalf("first: held %d, %v", held, err)
	}
	if held, err := n.reserve(command{op: opSet, key: "b", value: "2"}); err != nil || held != 2+entryOverhead {
		t.Fatalf("second, in flight with the first: held %d, %v", held, err)
	}
	if _, err := n.reserve(command{op: opSet, key: "c", value: "3"}); err != errCacheFull {
		t.Fatalf("third: %v, want errCacheFull", err)
	}
	// Both applied and answered: the map holds them, nothing in flight.
	n.cache.Set("a", "1")
	n.cache.Set("b", "2")
	n.inFlight.Store(0)
	if _, err := n.reserve(command{op: opSet, key: "c", value: "3"}); err != errCacheFull {
		t.Fatalf("third, after both applied: %v, want errCacheFull", err)
	}
	if held, err := n.reserve(command{op: opSet, key: "a", value: "9"}); err != nil || held > 0 {
		t.Fatalf("same-size overwrite at the cap: held %d, %v", held, err)
	}
}
