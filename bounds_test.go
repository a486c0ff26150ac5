package main

// Bounded memory and expiry against real processes.

import (
	"fmt"
	"io"
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
	req, err := http.NewRequest(http.MethodPost, "http://"+p.http+path, strings.NewReader(form.Encode()))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := exchange(httpClient, req)
	if err != nil {
		p.t.Fatalf("%s POST %s: %v", p.name, path, err)
	}
	return r
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
		if s.Bytes > limit || s.Bytes == 0 || s.Keys != full {
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

	// Writers racing for the last room: in-flight writes count, so no node
	// ever passes the cap.
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
		if b := p.mustStatus().Bytes; b > limit || b != s.Bytes {
			t.Fatalf("%s holds %d bytes; leader %d, cap %d", p.name, b, s.Bytes, limit)
		}
	}
}

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
