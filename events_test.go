package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hashicorp/go-hclog"
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

// serveHub serves h's /events (opening with a fixed status) on a loopback
// test server, as the node does but without Raft.
func serveHub(t *testing.T, h *hub) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serveEvents(w, r, func() map[string]any { return map[string]any{"state": "Leader"} })
	}))
	t.Cleanup(func() { h.close(); ts.Close() })
	return ts
}

// A client that connects and never reads holds its place only until the
// stream's lifetime ends it (its socket buffers would take the pings for
// days); a client that reads gets the "end" event with a "retry:" and the
// end of the stream at the same moment.
func TestEventsStreamLifetime(t *testing.T) {
	h := newHub("n1")
	h.lifetime = time.Second
	ts := serveHub(t, h)
	addr := ts.Listener.Addr().String()

	// The reader: the whole stream, which must end by itself.
	type result struct {
		body string
		took time.Duration
		err  error
	}
	read := make(chan result, 1)
	go func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/events", nil)
		resp, err := streamClient.Do(req)
		if err != nil {
			read <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		read <- result{body: string(b), took: time.Since(start), err: err}
	}()

	// The client that never reads.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both subscribers", func() error {
		if n := h.count(); n != 2 {
			return fmt.Errorf("%d subscribers", n)
		}
		return nil
	})
	subscribed := time.Now()
	waitFor(t, h.lifetime+3*time.Second, "the places freed", func() error {
		if n := h.count(); n != 0 {
			return fmt.Errorf("%d subscribers after %v (lifetime %v)", n, time.Since(subscribed).Round(time.Millisecond), h.lifetime)
		}
		return nil
	})

	r := <-read
	if r.err != nil {
		t.Fatalf("reader: %v after %v; got %q", r.err, r.took, r.body)
	}
	if !strings.HasPrefix(r.body, "event: status\n") || !strings.HasSuffix(r.body, "\n\n") {
		t.Fatalf("stream %q: want the status first and whole events", r.body)
	}
	last := r.body[strings.LastIndex(strings.TrimSuffix(r.body, "\n\n"), "\n\n")+2:]
	if !strings.HasPrefix(last, "retry: 1000\nevent: end\ndata: {") || !strings.Contains(last, `"reason":"lifetime"`) || !strings.Contains(last, `"node":"n1"`) {
		t.Fatalf("last event %q: want retry: 1000 and an end event", last)
	}

	// The same client on a stream that n1 relays from n2 (/events?node=):
	// n2's end comes through, and n1's relay ends the response too.
	lnA, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	lnB, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	a, b := startLiveNode(t, "n1", lnA, time.Second), startLiveNode(t, "n2", lnB, time.Second)
	members := []server{{ID: "n1", HTTP: lnA.Addr().String()}, {ID: "n2", HTTP: lnB.Addr().String()}}
	for _, n := range []*liveNode{a, b} {
		n.store.st = status{Raft: n.id, Servers: members}
		n.srv.Start()
		t.Cleanup(func() { n.hub.close(); n.srv.Close() })
	}
	relayed, err := net.Dial("tcp", lnA.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	if _, err := fmt.Fprintf(relayed, "GET /events?node=n2 HTTP/1.1\r\nHost: %s\r\n\r\n", lnA.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the relayed subscriber on n2", func() error {
		if n := b.hub.count(); n != 1 {
			return fmt.Errorf("%d subscribers", n)
		}
		return nil
	})
	subscribed = time.Now()
	waitFor(t, time.Second+3*time.Second, "n2's place freed", func() error {
		if n := b.hub.count(); n != 0 {
			return fmt.Errorf("%d subscribers after %v", n, time.Since(subscribed).Round(time.Millisecond))
		}
		return nil
	})
	// Only now does the client read: the whole relayed response, ended.
	_ = relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(relayed), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(body), "retry: 1000\nevent: end\n") || !strings.Contains(string(body), `"node":"n2"`) {
		t.Fatalf("relayed stream: %v, %q; want it ended after n2's end event", err, body)
	}
}

// viewStore is a store that reports a fixed status, members included:
// enough for the live view to draw a member and relay another, with no Raft
// behind it.
type viewStore struct {
	memStore
	st status
}

func (s *viewStore) Status() status    { return s.st }
func (s *viewStore) Members() []server { return s.st.Servers }

// liveNode is an in-process member for the live view: its own hub (streams
// of lifetime) and the real handler, on ln.
type liveNode struct {
	id     string
	hub    *hub
	store  *viewStore
	srv    *httptest.Server
	direct atomic.Int64 // /events streams of its own opened
	relay  atomic.Int64 // /events?node= streams it relayed
}

func startLiveNode(t *testing.T, id string, ln net.Listener, lifetime time.Duration) *liveNode {
	n := &liveNode{id: id, hub: newHub(id), store: &viewStore{memStore: memStore{m: map[string]string{}}}}
	n.hub.lifetime = lifetime
	api := newHandler(n.store, n.hub, hclog.NewNullLogger(), security{}, nil)
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			if r.URL.Query().Get("node") == "" {
				n.direct.Add(1)
			} else {
				n.relay.Add(1)
			}
		}
		api.ServeHTTP(w, r)
	}))
	n.srv.Listener.Close()
	n.srv.Listener = ln
	return n
}

// The live view in a real browser across streams that the nodes end: n1
// serves the page and its own stream; n2 sits on a port the browser refuses,
// so its stream comes through n1's relay. At each end the page opens the
// next stream the same way at once and says nothing: no member is ever
// drawn unreachable, the timeline gains no entry, and events published
// after the renewals arrive.
func TestEventsLifetimeKeepsLiveView(t *testing.T) {
	ctx := browser(t)
	pageErrors := watchExceptions(ctx)
	const lifetime = 1500 * time.Millisecond
	lnA, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	lnB, err := net.Listen("tcp", browserBlockedAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	a, b := startLiveNode(t, "n1", lnA, lifetime), startLiveNode(t, "n2", lnB, lifetime)
	addrA, addrB := lnA.Addr().String(), lnB.Addr().String()
	servers := []server{{ID: "n1", Address: "n1", Suffrage: "Voter", HTTP: addrA}, {ID: "n2", Address: "n2", Suffrage: "Voter", HTTP: addrB}}
	for _, n := range []*liveNode{a, b} {
		st := status{Node: "node-" + n.id, HTTP: addrA, Raft: n.id, State: "Leader", Leader: "n1", LeaderHTTP: addrA, Term: 2,
			LastLogIndex: 3, CommitIndex: 3, AppliedIndex: 3, Writable: true, Member: true, Servers: servers}
		if n == b {
			st.HTTP, st.State, st.Writable = addrB, "Follower", false
		}
		n.store.st = st
		n.srv.Start()
		t.Cleanup(func() { n.hub.close(); n.srv.Close() })
	}

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addrA+"/ui")); err != nil {
		t.Fatal(err)
	}
	drawn := func(applied uint64) func() error {
		return func() error {
			view, err := readView(ctx)
			if err != nil {
				return err
			}
			if v, w := view["n1"], view["n2"]; v.State != "Leader" || w.State != "Follower" || v.Applied != applied || w.Applied != applied {
				return fmt.Errorf("view %v", view)
			}
			return nil
		}
	}
	waitFor(t, 15*time.Second, "n1 drawn as the leader, n2 as a follower", drawn(3))
	// The timeline's health entries so far are the page's start (which may
	// try n2 directly and fail before n1's stream is there to relay it).
	const health = `Array.from(document.querySelectorAll('[data-event="unreachable"], [data-event="reachable"]')).map(e => e.dataset.event + ": " + e.textContent).join("\n")`
	before := evalString(ctx, health)
	// Every state the page draws from now on, however briefly.
	evalString(ctx, `(() => {
		const seen = window.__states = [];
		const note = (e) => { if (e.dataset && e.dataset.node && e.dataset.state) seen.push(e.dataset.node + "=" + e.dataset.state); };
		new MutationObserver((ms) => { for (const m of ms) {
			if (m.type === "attributes") note(m.target);
			else for (const e of m.addedNodes) if (e.nodeType === 1) { note(e); e.querySelectorAll("[data-state]").forEach(note); }
		} }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
		return "";
	})()`)
	waitFor(t, 4*lifetime+10*time.Second, "each stream renewed twice", func() error {
		if d, r := a.direct.Load(), a.relay.Load(); d < 3 || r < 3 {
			return fmt.Errorf("n1's own stream opened %d times, n2's relayed %d times", d, r)
		}
		return nil
	})
	if got := evalString(ctx, `window.__states.filter((s) => !s.endsWith("=Leader") && !s.endsWith("=Follower")).join(", ")`); got != "" {
		t.Fatalf("during the renewals the page drew %s", got)
	}
	if after := evalString(ctx, health); after != before || !strings.Contains(after, "watching node-n1") || !strings.Contains(after, "watching node-n2") {
		t.Fatalf("after %d and %d streams the timeline says:\n%s\nwant what it said before the renewals:\n%s", a.direct.Load(), a.relay.Load(), after, before)
	}
	for _, n := range []*liveNode{a, b} {
		n.hub.publish("progress", map[string]any{"last_log_index": 7, "commit_index": 7, "applied_index": 7, "last_snapshot_index": 0, "keys": 1})
	}
	waitFor(t, 10*time.Second, "events after the renewals", drawn(7))
	if errs := pageErrors(); len(errs) > 0 {
		t.Fatalf("uncaught exceptions in the page: %v", errs)
	}
}
