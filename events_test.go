package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sseEvent is one event read from /events.
type sseEvent struct {
	typ  string
	data map[string]any
}

func (e sseEvent) str(k string) string { s, _ := e.data[k].(string); return s }
func (e sseEvent) num(k string) uint64 { f, _ := e.data[k].(float64); return uint64(f) }

// sseStream is a subscription to one node's /events.
type sseStream struct {
	t      testing.TB
	name   string
	header http.Header
	events chan sseEvent
	cancel context.CancelFunc
	seen   []sseEvent // every event next has read, in order
}

// streamClient has no timeout: a stream is open for as long as the test.
var streamClient = &http.Client{}

// subscribe opens addr's /events; the stream closes with the test.
func subscribe(t testing.TB, name, addr string) *sseStream {
	t.Helper()
	return subscribeURL(t, name, "http://"+addr+"/events")
}

// subscribeURL opens the event stream at u (a relayed one, say).
func subscribeURL(t testing.TB, name, u string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe to %s: %v", name, err)
	}
	if resp.StatusCode != 200 {
		cancel()
		resp.Body.Close()
		t.Fatalf("subscribe to %s: %s", name, resp.Status)
	}
	s := &sseStream{t: t, name: name, header: resp.Header, events: make(chan sseEvent, 4096), cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = map[string]any{}
				if err := json.Unmarshal([]byte(line[len("data: "):]), &ev.data); err != nil {
					ev.data = map[string]any{"unparsable": line}
				}
			case line == "" && ev.typ != "":
				s.events <- ev
				ev = sseEvent{}
			}
		}
	}()
	return s
}

// next returns the first event (from now on) for which match is true.
func (s *sseStream) next(timeout time.Duration, what string, match func(sseEvent) bool) sseEvent {
	s.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("%s: stream ended waiting for %s; seen %v", s.name, what, s.types())
			}
			s.seen = append(s.seen, ev)
			if _, bad := ev.data["unparsable"]; bad {
				s.t.Fatalf("%s: event %s with bad JSON: %v", s.name, ev.typ, ev.data)
			}
			if ev.str("node") == "" || ev.str("time") == "" {
				s.t.Fatalf("%s: event %s without node or time: %v", s.name, ev.typ, ev.data)
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			s.t.Fatalf("%s: no %s within %v; seen %v", s.name, what, timeout, s.types())
		}
	}
}

func (s *sseStream) types() []string {
	var ts []string
	for _, e := range s.seen {
		ts = append(ts, e.typ)
	}
	return ts
}

// The event stream around writes, a leader's death, the election and a
// snapshot, from every node, in the contract's types and fields.
func TestEventsAroundAnElection(t *testing.T) {
	c := startCluster(t, 3, nil)
	streams := map[*proc]*sseStream{}
	for _, p := range c.nodes {
		s := subscribe(t, p.name, p.http)
		streams[p] = s
		// No Origin (a program): no CORS answer; origin_test.go has the browsers'.
		for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Access-Control-Allow-Origin": ""} {
			if got := s.header.Get(k); got != want {
				t.Fatalf("%s /events %s: %q, want %q", p.name, k, got, want)
			}
		}
		first := s.next(10*time.Second, "status", func(sseEvent) bool { return true })
		if first.typ != "status" || first.str("node") != p.raftAdv || first.str("name") != p.name || first.str("state") == "" {
			t.Fatalf("%s: first event %s %v, want status with node %s and name %s", p.name, first.typ, first.data, p.raftAdv, p.name)
		}
		if _, ok := first.data["servers"].([]any); !ok {
			t.Fatalf("%s: status event without servers: %v", p.name, first.data)
		}
	}

	// A write's index reaches applied_index on every node.
	l := c.leader()
	r := l.expect("/set?key=a&value=1", 200, "ok\n")
	idx, err := strconv.ParseUint(r.header.Get("X-Raft-Index"), 10, 64)
	if err != nil || idx == 0 {
		t.Fatalf("X-Raft-Index %q", r.header.Get("X-Raft-Index"))
	}
	for p, s := range streams {
		ev := s.next(10*time.Second, "progress past the write", func(e sseEvent) bool {
			return e.typ == "progress" && e.num("applied_index") >= idx
		})
		if ev.num("commit_index") < ev.num("applied_index") || ev.num("last_log_index") < ev.num("commit_index") {
			t.Fatalf("%s: progress out of order: %v", p.name, ev.data)
		}
	}

	// The leader dies: a survivor asks for votes and wins; the other
	// received its vote request and then learns of it as leader.
	l.kill()
	var survivors []*proc
	for _, p := range c.nodes {
		if p != l {
			survivors = append(survivors, p)
		}
	}
	w := waitLeader(t, 20*time.Second, survivors, l)
	other := survivors[0]
	if other == w {
		other = survivors[1]
	}
	ws, fs := streams[w], streams[other]
	ws.next(10*time.Second, w.name+" becoming candidate", func(e sseEvent) bool {
		return e.typ == "state" && e.str("state") == "Candidate"
	})
	won := ws.next(10*time.Second, w.name+" becoming leader", func(e sseEvent) bool {
		return e.typ == "state" && e.str("state") == "Leader"
	})
	ws.next(10*time.Second, "a failed heartbeat to the dead leader", func(e sseEvent) bool {
		return e.typ == "heartbeat" && e.str("peer") == l.raftAdv && e.data["ok"] == false
	})
	vote := fs.next(10*time.Second, "a vote request from "+w.name, func(e sseEvent) bool {
		return e.typ == "vote" && e.str("candidate") == w.raftAdv && e.data["prevote"] == false
	})
	fs.next(10*time.Second, "learning the new leader", func(e sseEvent) bool {
		return e.typ == "leader" && e.str("leader") == w.raftAdv && e.num("term") >= vote.num("term")
	})
	if won.num("term") > vote.num("term") {
		t.Fatalf("%s won term %d but asked for votes in term %d", w.name, won.num("term"), vote.num("term"))
	}

	// Snapshots (threshold 2, checked every second here) show up.
	w.expect("/set?key=b&value=2", 200, "ok\n")
	w.expect("/set?key=c&value=3", 200, "ok\n")
	snap := ws.next(20*time.Second, "a snapshot", func(e sseEvent) bool { return e.typ == "snapshot" })
	if snap.num("index") == 0 || snap.num("keys") == 0 {
		t.Fatalf("snapshot event %v", snap.data)
	}
	if _, ok := snap.data["duration_ms"].(float64); !ok {
		t.Fatalf("snapshot event without duration_ms: %v", snap.data)
	}
}

// At most 64 subscribers; the 65th is refused; a subscriber that goes away
// frees its place (nothing leaks: 64 fit again afterwards).
func TestEventsSubscribersCappedAndFreed(t *testing.T) {
	p := newProc(t, "node1")
	p.start("-bootstrap")
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	for round := range 2 {
		var subs []*sseStream
		for range maxSubscribers {
			s := subscribe(t, p.name, p.http)
			s.next(10*time.Second, "status", func(sseEvent) bool { return true })
			subs = append(subs, s)
		}
		r := p.get("/events")
		if r.code != 503 {
			t.Fatalf("round %d: subscriber 65: %d %q, want 503", round, r.code, r.body)
		}
		for _, s := range subs {
			s.cancel()
		}
		waitFor(t, 10*time.Second, "every place freed", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+"/events", nil)
			resp, err := streamClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s", resp.Status)
			}
			return nil
		})
	}
}

// stuckWriter is a client that stopped reading: every Write blocks until
// released.
type stuckWriter struct {
	header  http.Header
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Flush()              {}
func (w *stuckWriter) Write(b []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}
func (w *stuckWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A stuck subscriber never blocks publishing: its queue fills, the rest is
// dropped and counted, and it learns how many it lost.
func TestHubDropsForStuckSubscriber(t *testing.T) {
	h := newHub("n1")
	w := &stuckWriter{header: http.Header{}, release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequest(http.MethodGet, "/events", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.serveEvents(w, req, func() map[string]any { return map[string]any{"state": "Leader"} })
	}()
	waitFor(t, 10*time.Second, "the subscriber", func() error {
		if h.count() != 1 {
			return fmt.Errorf("%d subscribers", h.count())
		}
		return nil
	})
	const extra = 44
	for i := range subscriberQueue + extra {
		h.publish("progress", map[string]any{"i": i}) // would hang here if it waited
	}
	close(w.release)
	waitFor(t, 10*time.Second, "the queue drained", func() error {
		if !strings.Contains(w.String(), fmt.Sprintf(`"i":%d,`, subscriberQueue-1)) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	h.publish("progress", map[string]any{"i": "last"})
	waitFor(t, 10*time.Second, "the last event delivered", func() error {
		if !strings.Contains(w.String(), `"i":"last"`) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	cancel()
	<-done
	out := w.String()
	if n := strings.Count(out, "event: progress\n"); n != subscriberQueue+1 {
		t.Fatalf("%d progress events delivered, want %d", n, subscriberQueue+1)
	}
	if !strings.HasPrefix(out, "event: status\ndata: {") || strings.Count(out, `"dropped":`) != 1 || !strings.Contains(out, fmt.Sprintf(`{"dropped":%d,`, extra)) {
		t.Fatalf("want the status first and one event saying %d dropped; got %.400s", extra, out)
	}
	if h.count() != 0 {
		t.Fatalf("%d subscribers left after the stream ended", h.count())
	}
}
