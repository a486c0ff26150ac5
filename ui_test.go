package main

// The live view in a real browser: Debian's chromium, driven over the
// DevTools protocol by chromedp, against a real 3-node cluster.

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

// A learner's failover, in the browser: the page (served by the leader)
// shows three nodes and one leader, a snapshot on the strips, a write from
// its form applied on every node; then the leader is killed and the page
// marks it unreachable and shows the election and the new leader.
func TestLiveViewInBrowser(t *testing.T) {
	ctx := browser(t)
	pageErrors := watchExceptions(ctx)
	c := startCluster(t, 3, nil)
	l := c.leader()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+l.http+"/")); err != nil {
		t.Fatal(err)
	}
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(url, "/ui") {
		t.Fatalf("/ redirected to %q (%v), want /ui", url, err)
	}
	waitFor(t, 15*time.Second, "three nodes, one of them the leader", func() error {
		view, err := readView(ctx)
		if err != nil {
			return err
		}
		leaders := 0
		for _, p := range c.nodes {
			v, ok := view[p.raftAdv]
			if !ok {
				return fmt.Errorf("%s not drawn (view %v)", p.name, view)
			}
			if v.State == "Leader" {
				leaders++
				if p != l {
					return fmt.Errorf("%s drawn as leader", p.name)
				}
			}
		}
		if len(view) != 3 || leaders != 1 {
			return fmt.Errorf("%d nodes, %d leaders: %v", len(view), leaders, view)
		}
		return nil
	})

	// A write from the page's form: ok <index>, then applied everywhere.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#write input[name=key]`), "hello"),
		chromedp.SetValue(chromedp.CSS(`#write input[name=value]`), "raft"),
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
	waitFor(t, 15*time.Second, "every node's apply time in the result", func() error {
		res := evalString(ctx, `document.querySelector('#write-result').textContent`)
		for _, p := range c.nodes {
			if !strings.Contains(res, p.name) {
				return fmt.Errorf("#write-result %q lacks %s", res, p.name)
			}
		}
		if strings.Count(res, "ms") < 3 {
			return fmt.Errorf("#write-result %q: want a time per node", res)
		}
		view, err := readView(ctx)
		if err != nil {
			return err
		}
		for id, v := range view {
			if v.Applied < index {
				return fmt.Errorf("%s drawn with applied %d < %d", id, v.Applied, index)
			}
		}
		return nil
	})
	for _, p := range c.nodes {
		waitValue(t, p, "hello", "raft")
	}
	// Snapshots (threshold 2, checked every second here) reach the strips.
	waitFor(t, 20*time.Second, "a snapshot index on every strip", func() error {
		view, err := readView(ctx)
		if err != nil {
			return err
		}
		for id, v := range view {
			if v.Snapshot == 0 || v.Snapshot > v.Applied {
				return fmt.Errorf("%s: snapshot %d, applied %d", id, v.Snapshot, v.Applied)
			}
		}
		return nil
	})

	// Kill the leader that served the page: it keeps drawing from the
	// others' streams.
	l.kill()
	killed := time.Now()
	var nl *proc
	waitFor(t, 10*time.Second, "the old leader unreachable and a new leader drawn", func() error {
		view, err := readView(ctx)
		if err != nil {
			return err
		}
		if v := view[l.raftAdv]; v.State != "Unreachable" {
			return fmt.Errorf("old leader drawn as %q", v.State)
		}
		for _, p := range c.nodes {
			if p != l && view[p.raftAdv].State == "Leader" {
				nl = p
				return nil
			}
		}
		return fmt.Errorf("no new leader drawn: %v", view)
	})
	if s, err := nl.status(); err != nil || s.State != "Leader" {
		t.Fatalf("page shows %s leading; it says %s (%v)", nl.name, s.State, err)
	}
	waitFor(t, 10*time.Second-time.Since(killed), "the election in the timeline", func() error {
		js := fmt.Sprintf(`document.querySelectorAll('[data-event="vote"], [data-event="state"][data-node=%q]').length`, nl.raftAdv)
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("%d election entries", n)
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
