package main

// The lab in a real browser: make cluster's layout, started the way make
// cluster starts it (the lab supervisor, cmd/stlab, owning three -lab nodes,
// node1 on a port the browser refuses), the page opened at the supervisor's
// URL as the README says, every control clicked and its effect checked on the
// real processes, and lesson 4 run from the page to its end.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var updateLabScreenshots = flag.Bool("ui.lab-screenshots", false, "write lesson 4's screenshots to testdata/lab-lesson4-*.png (for docs/lab.md)")

// labNode is one node the supervisor started: what the test knows of it.
type labNode struct {
	name, http, raft string
	pidFile          string
}

func (n labNode) status() (status, error) {
	r, err := call(n.http, "/status")
	if err != nil {
		return status{}, err
	}
	var s status
	err = json.Unmarshal([]byte(r.body), &s)
	return s, err
}

// freeRun returns a port p such that p..p+n-1 are free on 127.0.0.1, trying
// the candidates first (nil: any below the ephemeral range).
func freeRun(t *testing.T, n int, candidates ...int) int {
	t.Helper()
	free := func(p int) bool {
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				return false
			}
			l.Close()
		}
		return true
	}
	for _, p := range candidates {
		if free(p) {
			return p
		}
	}
	if len(candidates) > 0 {
		t.Fatalf("none of %v has %d free ports after it", candidates, n)
	}
	for range 200 {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		p, _ := strconv.Atoi(port)
		if free(p) {
			return p
		}
	}
	t.Fatalf("no run of %d free ports", n)
	return 0
}

// startLab builds cmd/stlab and runs it as make cluster does, with node1's
// HTTP port one the browser refuses, and waits for a writable leader. Every
// process is stopped at the end, the nodes by their PID files.
func startLab(t *testing.T) (page string, nodes []labNode) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "stlab")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/stlab").CombinedOutput(); err != nil {
		t.Fatalf("build stlab: %v\n%s", err, out)
	}
	// 6000 (X11), as make cluster; else 10080 (Amanda) or 6665 (IRC), which
	// browsers refuse as well.
	httpBase := freeRun(t, 3, 6000, 10080, 6665)
	raftBase := freeRun(t, 3)
	// The supervisor refuses a port browsers refuse: 10080 is the one
	// freeAddr's range holds.
	for page = freeAddr(t); strings.HasSuffix(page, ":10080"); page = freeAddr(t) {
	}
	data := filepath.Join(dir, "cluster")
	cmd := exec.Command(bin, "-bin", daemonPath, "-dir", data, "-n", "3", "-addr", page,
		"-http-base", strconv.Itoa(httpBase), "-raft-base", strconv.Itoa(raftBase))
	logf, err := os.Create(filepath.Join(dir, "stlab.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, labNode{name: fmt.Sprintf("node%d", i),
			http: fmt.Sprintf("127.0.0.1:%d", httpBase+i-1), raft: fmt.Sprintf("127.0.0.1:%d", raftBase+i-1),
			pidFile: filepath.Join(data, fmt.Sprintf("node%d.pid", i))})
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for _, n := range nodes {
			if b, err := os.ReadFile(n.pidFile); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGCONT)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "stlab.log")); err == nil {
				t.Logf("---- stlab log ----\n%s", b)
			}
			for _, n := range nodes {
				if b, err := os.ReadFile(filepath.Join(data, n.name+".log")); err == nil {
					t.Logf("---- %s log (tail) ----\n%s", n.name, tail(string(b), 3000))
				}
			}
		}
	})
	waitFor(t, 60*time.Second, "the supervisor's cluster to elect node1 and take writes", func() error {
		for _, n := range nodes {
			s, err := n.status()
			if err != nil {
				return err
			}
			if s.Leader != nodes[0].raft || len(s.Servers) != 3 {
				return fmt.Errorf("%s: leader %q, %d servers", n.name, s.Leader, len(s.Servers))
			}
		}
		return nil
	})
	return page, nodes
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// clickIn clicks the first button under sel whose text is label.
func clickIn(t *testing.T, ctx context.Context, sel, label string) {
	t.Helper()
	clickWhere(t, ctx, sel, "", label)
}

// clickWhere clicks the first button under sel, in an element whose text
// starts with row (a menu row: "to node3:"), whose text is label.
func clickWhere(t *testing.T, ctx context.Context, sel, row, label string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const b = [...document.querySelectorAll(%q)].find(b => b.textContent.trim() === %q && !b.disabled && (b.parentElement.textContent || "").startsWith(%q)); if (!b) return false; b.click(); return true; })()`, sel+" button", label, row)
	waitFor(t, 10*time.Second, fmt.Sprintf("button %q in %s", label, sel), func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not there (yet)")
		}
		return nil
	})
}

// menu opens node n's lab menu by clicking its circle, as a learner does.
func menu(t *testing.T, ctx context.Context, n labNode) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const g = document.querySelector('#nodes [data-node=%q]'); if (!g) return false; g.dispatchEvent(new MouseEvent('click', {bubbles: true})); return !document.getElementById('node-menu').hidden; })()`, n.raft)
	waitFor(t, 10*time.Second, n.name+"'s menu", func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil || !ok {
			return fmt.Errorf("menu not open (%v)", err)
		}
		return nil
	})
}

// supervised reads the supervisor's view of node name.
func supervised(page, name string) (map[string]any, error) {
	r, err := call(page, "/lab-api/nodes")
	if err != nil {
		return nil, err
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.body), &list); err != nil {
		return nil, err
	}
	for _, p := range list {
		if p["name"] == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%s not listed", name)
}

func TestLabInBrowser(t *testing.T) {
	ctx := browser(t)
	pageErrors := watchExceptions(ctx)
	page, nodes := startLab(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	opened := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+page+"/")); err != nil {
		t.Fatal(err)
	}
	st, err := n1.status()
	if err != nil {
		t.Fatal(err)
	}
	// The first-contact criterion, through the README's URL: within 5 s,
	// all three by name, node1 leading, every strip.
	waitFor(t, 5*time.Second, "three nodes live, node1 leading, within 5 s", func() error {
		view, err := readView(ctx)
		if err != nil {
			return err
		}
		want := map[string]string{n1.raft: "Leader", n2.raft: "Follower", n3.raft: "Follower"}
		for id, state := range want {
			if v := view[id]; v.State != state || v.Applied < st.CommitIndex {
				return fmt.Errorf("%s drawn %+v, want %s applied ≥ %d", id, v, state, st.CommitIndex)
			}
		}
		names := evalString(ctx, `Array.from(document.querySelectorAll('#nodes .name')).map(e => e.textContent).sort().join(",")`)
		if names != "node1,node2,node3" {
			return fmt.Errorf("names %q", names)
		}
		return nil
	})
	t.Logf("drawn %v after opening", time.Since(opened).Round(time.Millisecond))

	t.Run("freeze and thaw", func(t *testing.T) {
		menu(t, ctx, n2)
		clickIn(t, ctx, "#node-menu", "freeze")
		waitFor(t, 10*time.Second, "node2 frozen, and drawn so", func() error {
			p, err := supervised(page, "node2")
			if err != nil || p["state"] != "frozen" {
				return fmt.Errorf("supervisor: %v %v", p, err)
			}
			if got := evalString(ctx, fmt.Sprintf(`document.querySelector('#nodes [data-node=%q]').dataset.proc`, n2.raft)); got != "frozen" {
				return fmt.Errorf("data-proc %q", got)
			}
			return nil
		})
		menu(t, ctx, n2)
		clickIn(t, ctx, "#node-menu", "thaw")
		waitFor(t, 10*time.Second, "node2 answering again", func() error { _, err := n2.status(); return err })
	})

	t.Run("cut, drawn, heal all", func(t *testing.T) {
		menu(t, ctx, n1) // node1: on the port the browser refuses; the page goes through another member
		clickWhere(t, ctx, "#node-menu .menu-row", "to node3:", "cut →")
		waitFor(t, 10*time.Second, "node1 → node3 cut, on node1 and on the ring", func() error {
			s, err := n1.status()
			if err != nil || s.Lab == nil || len(s.Lab.Cut) != 1 || s.Lab.Cut[0] != n3.raft {
				return fmt.Errorf("node1's lab %+v (%v)", s.Lab, err)
			}
			n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('[data-fault="cut %s %s"]').length`, n1.raft, n3.raft)))
			if err != nil || n != 1 {
				return fmt.Errorf("cut drawn %d times (%v)", n, err)
			}
			return nil
		})
		clickIn(t, ctx, "#lab-tools", "heal all")
		waitFor(t, 10*time.Second, "no cut left", func() error {
			s, err := n1.status()
			if err != nil || s.Lab == nil || len(s.Lab.Cut) != 0 {
				return fmt.Errorf("node1's lab %+v (%v)", s.Lab, err)
			}
			return nil
		})
	})

	t.Run("crash and restart", func(t *testing.T) {
		menu(t, ctx, n3)
		clickIn(t, ctx, "#node-menu", "crash (kill -9)")
		waitFor(t, 10*time.Second, "node3 gone, drawn crashed", func() error {
			if _, err := n3.status(); err == nil {
				return fmt.Errorf("node3 still answers")
			}
			view, err := readView(ctx)
			if err != nil || view[n3.raft].State != "Unreachable" {
				return fmt.Errorf("node3 drawn %+v (%v)", view[n3.raft], err)
			}
			return nil
		})
		menu(t, ctx, n3)
		clickIn(t, ctx, "#node-menu", "restart")
		waitFor(t, 20*time.Second, "node3 back, drawn a follower", func() error {
			view, err := readView(ctx)
			if err != nil || view[n3.raft].State != "Follower" {
				return fmt.Errorf("node3 drawn %+v (%v)", view[n3.raft], err)
			}
			return nil
		})
	})

	t.Run("snapshot now, a read, hand over", func(t *testing.T) {
		r := getFollowing(t, n1.http, "/set?key=ping&value=pong")
		if r.code != 200 {
			t.Fatalf("set: %d %q", r.code, r.body)
		}
		waitFor(t, 10*time.Second, "node3 to apply the write", func() error {
			if s, err := n3.status(); err != nil || s.AppliedIndex < parseIndex(r.header.Get("X-Raft-Index")) {
				return fmt.Errorf("node3 applied %d (%v)", s.AppliedIndex, err)
			}
			return nil
		})
		menu(t, ctx, n3)
		clickIn(t, ctx, "#node-menu", "snapshot now")
		waitFor(t, 10*time.Second, "node3's snapshot at its applied index", func() error {
			s, err := n3.status()
			if err != nil || s.LastSnapshotIndex < parseIndex(r.header.Get("X-Raft-Index")) {
				return fmt.Errorf("node3 %+v (%v)", s, err)
			}
			return nil
		})
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](fmt.Sprintf(`(() => { const f = document.querySelector('#read'); f.elements.node.value = %q; f.elements.consistency.value = "strong"; f.requestSubmit(); })()`, n3.raft))); err != nil && !strings.Contains(err.Error(), "undefined") {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "a strong read from node3 refused", func() error {
			if got := evalString(ctx, `document.querySelector('#read-result').textContent`); !strings.Contains(got, "307") {
				return fmt.Errorf("#read-result %q", got)
			}
			return nil
		})
		var l labNode
		waitFor(t, 10*time.Second, "a leader", func() error {
			for _, n := range nodes {
				if s, err := n.status(); err == nil && s.State == "Leader" {
					l = n
					return nil
				}
			}
			return fmt.Errorf("none")
		})
		if l == n2 {
			t.Fatal("node2 already leads: the hand-over would prove nothing")
		}
		menu(t, ctx, l)
		clickWhere(t, ctx, "#node-menu .menu-row", "to node2:", "hand over")
		if open := evalString(ctx, `getComputedStyle(document.getElementById('node-menu')).display + " " + document.getElementById('node-menu').innerText.slice(0, 30)`); !strings.HasPrefix(open, "none") {
			t.Errorf("the menu stays open after an action: %q", open)
		}
		waitFor(t, 10*time.Second, "node2 leading, drawn so", func() error {
			s, err := n2.status()
			if err != nil || s.State != "Leader" {
				return fmt.Errorf("node2 %s (%v)", s.State, err)
			}
			view, err := readView(ctx)
			if err != nil || view[n2.raft].State != "Leader" {
				return fmt.Errorf("node2 drawn %+v (%v)", view[n2.raft], err)
			}
			return nil
		})
	})

	// The link controls, each on the real cluster: its effect in the nodes'
	// own lab state (/status), on Raft (who follows whom, when a write is
	// applied), on the ring, and healed again before the next.
	leader := func(t *testing.T) (l labNode, fs []labNode) {
		t.Helper()
		waitFor(t, 10*time.Second, "a writable leader", func() error {
			for _, n := range nodes {
				if s, err := n.status(); err == nil && s.State == "Leader" && s.Writable {
					l = n
					return nil
				}
			}
			return fmt.Errorf("none")
		})
		for _, n := range nodes {
			if n != l {
				fs = append(fs, n)
			}
		}
		return l, fs
	}
	labOf := func(n labNode) (cut []string, slow map[string]string, err error) {
		s, err := n.status()
		if err != nil {
			return nil, nil, err
		}
		if s.Lab == nil {
			return nil, nil, fmt.Errorf("%s shows no lab state", n.name)
		}
		cut = append([]string(nil), s.Lab.Cut...)
		slices.Sort(cut)
		return cut, s.Lab.Slow, nil
	}
	// want: each node's cuts, by name; nodes not named have none.
	cutsAre := func(want map[labNode][]labNode) error {
		for _, n := range nodes {
			var ids []string
			for _, m := range want[n] {
				ids = append(ids, m.raft)
			}
			slices.Sort(ids)
			cut, _, err := labOf(n)
			if err != nil {
				return err
			}
			if !slices.Equal(cut, ids) {
				return fmt.Errorf("%s cuts %v, want %v", n.name, cut, ids)
			}
		}
		return nil
	}
	drawn := func(kind string, from, to labNode) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('[data-fault="%s %s %s"]').length`, kind, from.raft, to.raft)))
		if err != nil {
			return -1
		}
		return n
	}
	follows := func(n, l labNode) error {
		s, err := n.status()
		if err != nil {
			return err
		}
		if s.State != "Follower" || s.Leader != l.raft {
			return fmt.Errorf("%s is %s, leader %q, want a follower of %s", n.name, s.State, s.Leader, l.name)
		}
		return nil
	}
	lostLeader := func(n, l labNode) error {
		s, err := n.status()
		if err != nil {
			return err
		}
		if s.Leader == l.raft {
			return fmt.Errorf("%s still hears %s (%s)", n.name, l.name, s.State)
		}
		return nil
	}
	// write sets key through the leader and returns its log index.
	write := func(t *testing.T, l labNode, key string) uint64 {
		t.Helper()
		r := getFollowing(t, l.http, "/set?key="+key+"&value=v")
		if r.code != 200 {
			t.Fatalf("set %s: %d %q", key, r.code, r.body)
		}
		return parseIndex(r.header.Get("X-Raft-Index"))
	}
	applies := func(t *testing.T, n labNode, idx uint64) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to apply entry %d", n.name, idx), func() error {
			if s, err := n.status(); err != nil || s.AppliedIndex < idx {
				return fmt.Errorf("applied %d (%v)", s.AppliedIndex, err)
			}
			return nil
		})
	}

	t.Run("isolate, heal its links", func(t *testing.T) {
		l, fs := leader(t)
		f, o := fs[0], fs[1]
		menu(t, ctx, f)
		clickIn(t, ctx, "#node-menu", "isolate")
		waitFor(t, 10*time.Second, f.name+" cut from both others, both ways, drawn so, and without a leader", func() error {
			if err := cutsAre(map[labNode][]labNode{f: {l, o}, l: {f}, o: {f}}); err != nil {
				return err
			}
			for _, m := range []labNode{l, o} {
				if drawn("cut", f, m) != 1 || drawn("cut", m, f) != 1 {
					return fmt.Errorf("%s ↔ %s not drawn cut both ways", f.name, m.name)
				}
			}
			return lostLeader(f, l)
		})
		// The majority carries on without it.
		idx := write(t, l, "isolated")
		applies(t, o, idx)
		if s, err := f.status(); err != nil || s.AppliedIndex >= idx {
			t.Fatalf("the isolated %s applied %d ≥ %d (%v)", f.name, s.AppliedIndex, idx, err)
		}
		menu(t, ctx, f)
		clickIn(t, ctx, "#node-menu", "heal its links")
		waitFor(t, 10*time.Second, "no cut left, "+f.name+" following "+l.name+" again", func() error {
			if err := cutsAre(nil); err != nil {
				return err
			}
			return follows(f, l)
		})
		applies(t, f, idx)
	})

	t.Run("cut both ways, heal the link", func(t *testing.T) {
		l, fs := leader(t)
		f, o := fs[0], fs[1]
		menu(t, ctx, f)
		clickWhere(t, ctx, "#node-menu .menu-row", "to "+l.name+":", "cut ↔")
		waitFor(t, 10*time.Second, f.name+" ↔ "+l.name+" cut on both, drawn so; "+f.name+" without a leader", func() error {
			if err := cutsAre(map[labNode][]labNode{f: {l}, l: {f}}); err != nil {
				return err
			}
			if drawn("cut", f, l) != 1 || drawn("cut", l, f) != 1 || drawn("cut", f, o) != 0 {
				return fmt.Errorf("cuts drawn: %d %d %d", drawn("cut", f, l), drawn("cut", l, f), drawn("cut", f, o))
			}
			return lostLeader(f, l)
		})
		// Only that link: the other follower still follows, the leader leads.
		if err := follows(o, l); err != nil {
			t.Fatal(err)
		}
		menu(t, ctx, f)
		clickWhere(t, ctx, "#node-menu .menu-row", "to "+l.name+":", "heal")
		waitFor(t, 10*time.Second, "the link healed, "+f.name+" following "+l.name+" again", func() error {
			if err := cutsAre(nil); err != nil {
				return err
			}
			if drawn("cut", f, l)+drawn("cut", l, f) != 0 {
				return fmt.Errorf("a cut still drawn")
			}
			return follows(f, l)
		})
	})

	t.Run("slow, heal the link", func(t *testing.T) {
		l, fs := leader(t)
		f := fs[0]
		menu(t, ctx, l)
		clickWhere(t, ctx, "#node-menu .menu-row", "to "+f.name+":", "slow →")
		waitFor(t, 10*time.Second, l.name+" → "+f.name+" slowed, drawn so", func() error {
			if _, slow, err := labOf(l); err != nil || slow[f.raft] != "200ms" || len(slow) != 1 {
				return fmt.Errorf("%s slows %v (%v)", l.name, slow, err)
			}
			if drawn("slow", l, f) != 1 {
				return fmt.Errorf("not drawn")
			}
			return nil
		})
		// The entry and the commit index that lets f apply it both travel
		// on l → f, each message 200 ms late: f cannot apply a write
		// sooner than 200 ms after it was sent.
		sent := time.Now()
		idx := write(t, l, "slow")
		var lag time.Duration
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if s, err := f.status(); err == nil && s.AppliedIndex >= idx {
				lag = time.Since(sent)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not apply entry %d within 10 s", f.name, idx)
			}
		}
		t.Logf("%s applied the write %v after it was sent", f.name, lag.Round(time.Millisecond))
		if lag < 200*time.Millisecond {
			t.Fatalf("%s applied the write %v after it was sent through a link 200 ms slow", f.name, lag)
		}
		menu(t, ctx, l)
		clickWhere(t, ctx, "#node-menu .menu-row", "to "+f.name+":", "heal")
		waitFor(t, 10*time.Second, "the link healed", func() error {
			if _, slow, err := labOf(l); err != nil || len(slow) != 0 {
				return fmt.Errorf("%s slows %v (%v)", l.name, slow, err)
			}
			if drawn("slow", l, f) != 0 {
				return fmt.Errorf("still drawn")
			}
			return nil
		})
	})

	t.Run("stale and strong reads", func(t *testing.T) {
		l, fs := leader(t)
		f := fs[0]
		idx := write(t, l, "readme")
		applies(t, f, idx)
		read := func(n labNode, consistency, want string) {
			t.Helper()
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](fmt.Sprintf(`(() => { const f = document.querySelector('#read'); f.elements.key.value = "readme"; f.elements.node.value = %q; f.elements.consistency.value = %q; document.querySelector('#read-result').textContent = ""; f.requestSubmit(); })()`, n.raft, consistency))); err != nil && !strings.Contains(err.Error(), "undefined") {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("a %s read from %s", consistency, n.name), func() error {
				if got := evalString(ctx, `document.querySelector('#read-result').textContent`); got != want {
					return fmt.Errorf("#read-result %q, want %q", got, want)
				}
				return nil
			})
		}
		// What the nodes answer themselves, which the page must show.
		if r, err := call(f.http, "/get?key=readme"); err != nil || r.body != "v\n" {
			t.Fatalf("%s: %v %q", f.name, err, r.body)
		}
		read(f, "stale", f.name+": readme = v")
		read(l, "strong", l.name+": readme = v")
		read(f, "strong", f.name+": 307 refused: this node is not the leader (it redirects to it)")
	})

	// runLesson runs the page's lesson of that title from its list, step by
	// step: each must reach its expected outcome (lessons.json's "outcome"
	// words, every placeholder filled) within its time. before runs ahead
	// of a step's "Do it".
	runLesson := func(t *testing.T, title string, before func(step int)) {
		t.Helper()
		if evalString(ctx, `String(document.getElementById('lessons').hidden)`) == "true" {
			clickIn(t, ctx, "#top", "Lessons")
		}
		if problems := evalString(ctx, `lessonProblems.join("; ")`); problems != "" {
			t.Fatalf("the page's lessons: %s", problems)
		}
		clickIn(t, ctx, "#lesson-body", title)
		steps, err := chromedp.Run(ctx, chromedp.Evaluate[int](`running.lesson.steps.length`))
		if err != nil || steps == 0 {
			t.Fatalf("lesson %q: %d steps (%v)", title, steps, err)
		}
		phase := func(step int) error {
			got := evalString(ctx, `(() => { const b = document.querySelector('#lesson-body'); return b.dataset.step + ' ' + b.dataset.phase + ' ' + b.dataset.outcome; })()`)
			if strings.HasPrefix(got, fmt.Sprintf("%d late", step)) || got == fmt.Sprintf("%d done otherwise", step) {
				screenshot(t, ctx, "lab-lesson-late.png")
				t.Logf("timeline: %s", evalString(ctx, `[...document.querySelectorAll('#timeline li')].slice(0, 40).map(li => li.innerText.replace(/\s+/g, ' ')).join('\n')`))
				t.Fatalf("%s, step %d: %s: %s", title, step, got, evalString(ctx, `document.querySelector('#lesson-body').innerText`))
			}
			if got != fmt.Sprintf("%d done expected", step) {
				return fmt.Errorf("lesson at %q", got)
			}
			return nil
		}
		for step := 1; step <= steps; step++ {
			if before != nil {
				before(step)
			}
			clickIn(t, ctx, "#lesson-body", "Do it")
			waitFor(t, 30*time.Second, fmt.Sprintf("%s, step %d", title, step), func() error { return phase(step) })
			if text := evalString(ctx, `document.querySelector('#lesson-body').innerText`); regexp.MustCompile(`\{[a-z_]+\}`).MatchString(text) {
				t.Fatalf("%s, step %d: a placeholder left unfilled: %q", title, step, text)
			}
			if step < steps {
				clickIn(t, ctx, "#lesson-body", "Next")
			}
		}
	}

	// Lesson 3 from the page: a frozen follower cut from the leader answers
	// the old value to a stale read and refuses a strong one, the leader
	// answers the new; then the link is healed and the follower catches up.
	t.Run("lesson 3", func(t *testing.T) {
		runLesson(t, "3. A stale read, then a strong one", nil)
		text := evalString(ctx, `document.querySelector('#lesson-body').innerText`)
		if !strings.Contains(text, "The leader answered new") || !strings.Contains(text, "307, a redirect to the leader") {
			t.Fatalf("lesson 3's end: %q", text)
		}
		clickIn(t, ctx, "#lesson-body", "Finish")
		waitFor(t, 10*time.Second, "no cut left, every node answering lesson3=new", func() error {
			if err := cutsAre(nil); err != nil {
				return err
			}
			for _, n := range nodes {
				if r, err := call(n.http, "/get?key=lesson3"); err != nil || r.body != "new\n" {
					return fmt.Errorf("%s: %v %q", n.name, err, r.body)
				}
			}
			return nil
		})
	})

	// Lesson 4 from the page, on the real cluster: the isolated leader's
	// writes are never acknowledged, the majority elects and commits, and on
	// heal the old leader's uncommitted entries are replaced.
	t.Run("lesson 4", func(t *testing.T) {
		old, _ := leader(t)
		runLesson(t, "4. An isolated leader", func(step int) {
			if step == 3 {
				screenshot(t, ctx, "lab-lesson4-before-heal.png")
			}
		})
		if open := evalString(ctx, `getComputedStyle(document.getElementById('node-menu')).display`); open != "none" {
			t.Errorf("a node's menu is open at the end of the lesson: %q", evalString(ctx, `document.getElementById('node-menu').innerText`))
		}
		screenshot(t, ctx, "lab-lesson4-after-heal.png")
		text := evalString(ctx, `document.querySelector('#lesson-body').innerText`)
		if !strings.Contains(text, "never got ok") || !strings.Contains(text, "replaced entr") {
			t.Fatalf("lesson 4's end: %q", text)
		}
		// On the real node: the truncate event reached the page, and the old
		// leader's log holds the new leader's entries.
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('[data-event="truncate"][data-node=%q]').length`, old.raft)))
		if err != nil || n == 0 {
			t.Fatalf("no truncate entry for %s (%v)", old.name, err)
		}
		s, err := old.status()
		if err != nil || s.State != "Follower" {
			t.Fatalf("old leader %s: %s (%v)", old.name, s.State, err)
		}
		for _, key := range []string{"lesson4-b"} {
			if r, err := call(old.http, "/get?key="+key); err != nil || r.code != 404 {
				t.Fatalf("%s on the old leader: %v %d %q, want 404 (never committed)", key, err, r.code, r.body)
			}
		}
		if r, err := call(old.http, "/get?key=lesson4"); err != nil || r.body != "kept\n" {
			t.Fatalf("lesson4 on the old leader: %v %q, want kept", err, r.body)
		}
	})
	if errs := pageErrors(); len(errs) > 0 {
		t.Fatalf("uncaught exceptions in the page: %v", errs)
	}
}

// screenshot saves the page at 1400x900: into testdata with
// -ui.lab-screenshots (for docs/lab.md), else into a temp dir.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 900)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if *updateLabScreenshots {
		path = filepath.Join("testdata", name)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
