package main

// The live view in a real browser: Debian's chromium, driven over the
// DevTools protocol by chromedp, against a real 3-node cluster.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var updateScreenshot = flag.Bool("ui.screenshot", false, "write the failover screenshot to testdata/ui-failover.png (for the README)")

// browser starts headless chromium for one test. Without one the test skips,
// except under CI=true, where a missing browser is a failure (.ci/run
// installs it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no chromium on PATH (apt-get install -y chromium); CI must run the browser tests")
		}
		t.Skip("no chromium on PATH (apt-get install -y chromium): browser test skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// viewNode is what the page's DOM says about one member.
type viewNode struct {
	Node, State                           string
	Term, Last, Commit, Applied, Snapshot uint64
}

// readView returns the page's member elements, by Raft server ID.
func readView(ctx context.Context) (map[string]viewNode, error) {
	js := `Array.from(document.querySelectorAll('[data-node][data-state]')).map(e => ({
		node: e.dataset.node, state: e.dataset.state, term: e.dataset.term || "",
		last: e.dataset.lastLogIndex || "", commit: e.dataset.commitIndex || "",
		applied: e.dataset.appliedIndex || "", snapshot: e.dataset.snapshotIndex || ""}))`
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](js))
	if err != nil {
		return nil, err
	}
	view := map[string]viewNode{}
	for _, r := range raw {
		num := func(k string) uint64 { v, _ := strconv.ParseUint(r[k], 10, 64); return v }
		if _, dup := view[r["node"]]; dup {
			return nil, fmt.Errorf("two elements with data-state for %s", r["node"])
		}
		view[r["node"]] = viewNode{Node: r["node"], State: r["state"], Term: num("term"), Last: num("last"),
			Commit: num("commit"), Applied: num("applied"), Snapshot: num("snapshot")}
	}
	return view, nil
}

func evalString(ctx context.Context, js string) string {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

// browserBlockedAddr is a free loopback address on a port that browsers
// refuse to open (Chromium's kRestrictedPorts, which Firefox and Safari
// share): 6000, where make cluster puts node1, when it is free.
func browserBlockedAddr(t *testing.T) string {
	t.Helper()
	for _, port := range []int{6000, 6665, 6666, 6667, 6668, 6669, 6697, 10080} {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no browser-blocked port is free on 127.0.0.1")
	return ""
}

// writeFromPage submits the page's write form and returns the index in
// "ok <index>".
func writeFromPage(t *testing.T, ctx context.Context, key, value string) uint64 {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#write input[name=key]`), key),
		chromedp.SetValue(chromedp.CSS(`#write input[name=value]`), value),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			// requestSubmit fires the form's submit event, as a click does.
			_, err := chromedp.Evaluate[any](`document.querySelector('#write').requestSubmit()`)(ctx, t)
			if errors.Is(err, chromedp.ErrJSUndefined) {
				return nil
			}
			return err
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	var index uint64
	waitFor(t, 15*time.Second, "the write's result with its index", func() error {
		res := evalString(ctx, `document.querySelector('#write-result').textContent`)
		f := strings.Fields(res)
		if len(f) < 2 || f[0] != "ok" {
			return fmt.Errorf("#write-result %q", res)
		}
		n, err := strconv.ParseUint(strings.Trim(f[1], ":·,"), 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("#write-result %q: no index", res)
		}
		index = n
		return nil
	})
	return index
}

// waitDrawn waits until the page draws every node of want live (its own
// stream open, directly or relayed) in the state given ("" = any but
// Unreachable), applied at least up to index.
func waitDrawn(t *testing.T, ctx context.Context, timeout time.Duration, what string, want map[*proc]string, index uint64) map[string]viewNode {
	t.Helper()
	var view map[string]viewNode
	waitFor(t, timeout, what, func() error {
		var err error
		if view, err = readView(ctx); err != nil {
			return err
		}
		for p, state := range want {
			v, ok := view[p.raftAdv]
			switch {
			case !ok:
				return fmt.Errorf("%s not drawn (view %v)", p.name, view)
			case state != "" && v.State != state:
				return fmt.Errorf("%s drawn %s, want %s", p.name, v.State, state)
			case state == "" && v.State == "Unreachable":
				return fmt.Errorf("%s drawn Unreachable", p.name)
			case v.Applied < index:
				return fmt.Errorf("%s drawn with applied %d < %d", p.name, v.Applied, index)
			}
		}
		return nil
	})
	return view
}

// A new user's first look, in stock Chromium: make cluster's layout, with
// node1 (the leader) on a port the browser refuses, and the page opened from
// node2, as the README says. Within 5 s it shows all three by name, node1
// leading, and every strip; a write from its form goes through; then any
// one node can die and the other two stay drawn live: node2, which served
// the page, and node1, the leader, whose death the page tells as such.
func TestLiveViewInBrowser(t *testing.T) {
	ctx := browser(t)
	pageErrors := watchExceptions(ctx)
	blocked := browserBlockedAddr(t)
	c := startCluster(t, 3, func(i int, p *proc) {
		if i == 0 {
			p.http = blocked
		}
	})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	if l := c.leader(); l != n1 {
		t.Fatalf("%s leads; make cluster's node1 leads first", l.name)
	}
	// Nothing in the cluster is written yet: the strips must come from
	// the streams, not from a write the test made.
	opened := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+n2.http+"/")); err != nil {
		t.Fatal(err)
	}
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(url, "/ui") {
		t.Fatalf("/ redirected to %q (%v), want /ui", url, err)
	}
	st1, err := n1.status()
	if err != nil {
		t.Fatal(err)
	}
	view := waitDrawn(t, ctx, 5*time.Second, "three nodes live, node1 leading, within 5 s of opening",
		map[*proc]string{n1: "Leader", n2: "Follower", n3: "Follower"}, st1.CommitIndex)
	t.Logf("drawn %v after opening: %v", time.Since(opened).Round(time.Millisecond), view)
	if reach := evalString(ctx, fmt.Sprintf(`document.querySelector('#nodes [data-node=%q]').dataset.reach`, n1.raftAdv)); reach != "relayed" {
		t.Fatalf("node1 (on blocked port %s) reached %q, want relayed", n1.http, reach)
	}
	// One name per member: the ring, the strips and the filters say node1,
	// node2, node3, never a Raft address; the header names the leader.
	waitFor(t, 5*time.Second, "names everywhere", func() error {
		for _, sel := range []string{"#nodes .name", "#strips .strip-name", "#filter-nodes span"} {
			got := evalString(ctx, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.textContent).sort().join(",")`, sel))
			if got != "node1,node2,node3" {
				return fmt.Errorf("%s: %q", sel, got)
			}
		}
		who := evalString(ctx, `Array.from(document.querySelectorAll('b.who')).map(e => e.textContent).join(",")`)
		if strings.Contains(who, "127.0.0.1") {
			return fmt.Errorf("a mention by address: %q", who)
		}
		if sum := evalString(ctx, `document.querySelector('#summary').textContent`); !strings.Contains(sum, "leader node1") {
			return fmt.Errorf("header %q does not name node1 as leader", sum)
		}
		if title := evalString(ctx, `document.querySelector('#explain-title').textContent`); strings.Contains(title, "No leader") {
			return fmt.Errorf("narration says %q while node1 leads", title)
		}
		return nil
	})

	// A write from the page: node2 forwards it to node1, which the browser
	// cannot reach; ok <index>, then applied on every node.
	index := writeFromPage(t, ctx, "hello", "raft")
	waitFor(t, 15*time.Second, "every node's apply time in the result", func() error {
		res := evalString(ctx, `document.querySelector('#write-result').textContent`)
		for _, p := range c.nodes {
			if !strings.Contains(res, p.name+" +") {
				return fmt.Errorf("#write-result %q lacks %s's time", res, p.name)
			}
		}
		return nil
	})
	waitDrawn(t, ctx, 5*time.Second, "the write applied on every strip", map[*proc]string{n1: "Leader", n2: "", n3: ""}, index)
	for _, p := range c.nodes {
		waitValue(t, p, "hello", "raft")
	}

	// kill -9 of the node that served the page: node1 (relayed through
	// node3 now) and node3 stay live, and the page still writes.
	n2.kill()
	waitDrawn(t, ctx, 10*time.Second, "node2 unreachable, node1 and node3 live", map[*proc]string{n2: "Unreachable", n1: "Leader", n3: "Follower"}, index)
	r := n1.expect("/set?key=after&value=n2-died", 200, "ok\n")
	waitDrawn(t, ctx, 10*time.Second, "node1 and node3 still live after node2 died", map[*proc]string{n1: "Leader", n3: "Follower"}, parseIndex(r.header.Get("X-Raft-Index")))
	index = writeFromPage(t, ctx, "page", "without-node2")
	waitValue(t, n1, "page", "without-node2")
	n2.restart()
	waitDrawn(t, ctx, 20*time.Second, "node2 back", map[*proc]string{n1: "Leader", n2: "Follower", n3: "Follower"}, index)

	// kill -9 of the leader on the blocked port: the page tells its death
	// and the election, and draws the new leader.
	n1.kill()
	killed := time.Now()
	var nl *proc
	waitFor(t, 10*time.Second, "the old leader unreachable and a new leader drawn", func() error {
		view, err := readView(ctx)
		if err != nil {
			return err
		}
		if v := view[n1.raftAdv]; v.State != "Unreachable" {
			return fmt.Errorf("old leader drawn as %q", v.State)
		}
		for _, p := range []*proc{n2, n3} {
			if view[p.raftAdv].State == "Leader" {
				nl = p
				return nil
			}
		}
		return fmt.Errorf("no new leader drawn: %v", view)
	})
	if s, err := nl.status(); err != nil || s.State != "Leader" {
		t.Fatalf("page shows %s leading; it says %s (%v)", nl.name, s.State, err)
	}
	waitFor(t, 10*time.Second-time.Since(killed), "the election in the timeline and the narration", func() error {
		js := fmt.Sprintf(`document.querySelectorAll('[data-event="vote"], [data-event="state"][data-node=%q]').length`, nl.raftAdv)
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("%d election entries", n)
		}
		if title := evalString(ctx, `document.querySelector('#explain-title').textContent`); title != "New leader: "+nl.name {
			return fmt.Errorf("narration title %q", title)
		}
		return nil
	})
	// WindowSize includes the browser's chrome: set the page's own size, so
	// the screenshot shows the whole 1400x900 layout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 900)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "ui-failover.png")
	if *updateScreenshot {
		shot = filepath.Join("testdata", "ui-failover.png")
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if errs := pageErrors(); len(errs) > 0 {
		t.Fatalf("uncaught exceptions in the page: %v", errs)
	}
}

// watchExceptions collects the page's uncaught JavaScript exceptions.
func watchExceptions(ctx context.Context) func() []string {
	var mu sync.Mutex
	var errs []string
	_ = chromedp.Listen(ctx, func(ev any) { // fails only if the browser did not start, which browser() checked
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			mu.Lock()
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			errs = append(errs, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			mu.Unlock()
		}
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// A node that streams markup in every field it can (a hostile or broken
// member, or a value that slipped through): the page shows it as text and
// runs none of it. The page is served here without its Content-Security-
// Policy, so it is the escaping, not the policy, that is tested.
func TestLiveViewEscapesEventFields(t *testing.T) {
	ctx := browser(t)
	pageErrors := watchExceptions(ctx)
	const evil = `<img src=x onerror="window.__xss=(window.__xss||0)+1">`
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ui, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", http.StripPrefix("/ui/", http.FileServer(http.FS(ui))))
	self := "127.0.0.1:1" + evil
	servers := []map[string]any{{"id": self, "address": self, "suffrage": "Voter", "http": addr}}
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"node": evil, "raft": self, "http": addr, "state": "Leader", "leader": self, "servers": servers})
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(typ string, fields map[string]any) {
			fields["node"], fields["time"] = self, evil
			b, _ := json.Marshal(fields)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b)
		}
		send("status", map[string]any{"name": evil, "state": evil, "term": evil, "leader": self, "servers": servers,
			"last_log_index": evil, "commit_index": 3, "applied_index": evil, "last_snapshot_index": evil, "keys": evil})
		send("state", map[string]any{"state": evil, "term": evil, "dropped": evil})
		send("state", map[string]any{"state": "Leader", "term": evil})
		send("leader", map[string]any{"leader": evil, "term": evil})
		send("vote", map[string]any{"candidate": evil, "term": evil, "prevote": true})
		send("heartbeat", map[string]any{"peer": evil, "ok": false, "last_contact": evil})
		send("membership", map[string]any{"servers": []any{evil, map[string]any{"id": self, "http": addr}}})
		send("progress", map[string]any{"last_log_index": evil, "commit_index": evil, "keys": evil})
		send("snapshot", map[string]any{"index": evil, "term": evil, "keys": evil, "duration_ms": evil})
		send("restore", map[string]any{"index": evil, "keys": evil})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/ui/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the hostile events in the timeline", func() error {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#timeline [data-event]').length`))
		if err != nil {
			return err
		}
		if n < 9 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	// An injected <img> would be in the DOM (and counted below) as soon as
	// the markup is; its handler would run once its load fails.
	waitFor(t, 2*time.Second, "the markup shown as text", func() error {
		text := evalString(ctx, `document.body.innerText`)
		if !strings.Contains(text, `<img src=x onerror=`) {
			return fmt.Errorf("the markup is not shown as text")
		}
		return nil
	})
	got := evalString(ctx, `String(document.querySelectorAll('img').length) + " " + String(window.__xss)`)
	if got != "0 undefined" {
		t.Fatalf("injected elements and handler runs: %q", got)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Fatalf("uncaught exceptions in the page: %v", errs)
	}
}

// A leader the page cannot stream by any route (its port refused by the
// browser, and the members that could relay it answer 502) but that the
// nodes the page hears follow: drawn as their leader, "per" them, with the
// header naming it — never "No leader yet", and distinct from a crash.
func TestLiveViewLeaderOnlyReported(t *testing.T) {
	ctx := browser(t)
	pageErrors := watchExceptions(ctx)
	leader := browserBlockedAddr(t)
	ids := map[string]string{"node1": "127.0.0.1:17001", "node2": "127.0.0.1:17002", "node3": "127.0.0.1:17003"}
	addrs := map[string]string{"node1": leader}
	lns := map[string]net.Listener{}
	for _, name := range []string{"node2", "node3"} {
		ln, err := net.Listen("tcp", freeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		lns[name], addrs[name] = ln, ln.Addr().String()
	}
	servers := []map[string]any{}
	for _, name := range []string{"node1", "node2", "node3"} {
		servers = append(servers, map[string]any{"id": ids[name], "address": ids[name], "suffrage": "Voter", "http": addrs[name]})
	}
	ui, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node2", "node3"} {
		self := map[string]any{"node": ids[name], "name": name, "raft": ids[name], "http": addrs[name], "state": "Follower",
			"leader": ids["node1"], "leader_http": leader, "term": 2, "last_log_index": 7, "commit_index": 7, "applied_index": 7, "servers": servers}
		mux := http.NewServeMux()
		mux.Handle("/ui/", http.StripPrefix("/ui/", http.FileServer(http.FS(ui))))
		mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			_ = json.NewEncoder(w).Encode(self)
		})
		mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.URL.Query().Get("node") != "" {
				text(w, http.StatusBadGateway, "internal error: unreachable from this node\n") // as a relay to a cut-off member answers
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			b, _ := json.Marshal(self)
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		srv := &http.Server{Handler: mux}
		go srv.Serve(lns[name])
		t.Cleanup(func() { srv.Close() })
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addrs["node2"]+"/ui/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node1 drawn as the leader the others report", func() error {
		g := evalString(ctx, fmt.Sprintf(`(() => { const g = document.querySelector('#nodes [data-node=%q]'); return g ? g.dataset.state + " " + g.dataset.reach + " " + g.textContent : "none"; })()`, ids["node1"]))
		if !strings.HasPrefix(g, "Leader reported") || !strings.Contains(g, "per node2, node3") {
			return fmt.Errorf("node1 drawn %q", g)
		}
		sum := evalString(ctx, `document.querySelector('#summary').textContent`)
		// Its name is known only from its own stream: the page calls it by
		// its server ID, the same everywhere.
		if !strings.Contains(sum, "leader "+ids["node1"]+" (per node2, node3)") || !strings.Contains(sum, ids["node1"]+": no stream") {
			return fmt.Errorf("header %q", sum)
		}
		if title := evalString(ctx, `document.querySelector('#explain-title').textContent`); strings.Contains(title, "No leader") {
			return fmt.Errorf("narration %q", title)
		}
		return nil
	})
	if errs := pageErrors(); len(errs) > 0 {
		t.Fatalf("uncaught exceptions in the page: %v", errs)
	}
}
