// Command demo walks a learner through Raft on the cluster that make cluster
// started, one step at a time, in a terminal: first the tutorial's section 4
// (write, read, a stale read, snapshots, a restart, the leader killed and
// back), then the live page's lessons, in the same steps and with the same
// words as the page's Lessons panel. It waits for Enter between steps; with
// -auto it runs unattended and checks each step's real outcome, exiting 1
// on the first that fails (make demo AUTO=1; a test runs it).
//
// It acts as the page does: process faults (crash, restart, freeze, thaw)
// through the lab supervisor's API (cmd/stlab, make cluster's 127.0.0.1:6080),
// link faults through the nodes' own /lab endpoints, writes and reads
// straight to the node a step names. The lessons' steps and words come from
// the page's own lessons.json, which it reads from the cluster it drives
// (lessons.go).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stcache/stcache/client"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// node is one cluster node, as the supervisor lists it.
type node struct {
	Name string `json:"name"`
	ID   string `json:"id"` // its Raft server ID
	HTTP string `json:"http"`
	Raft string `json:"raft"`
	PID  int    `json:"pid"`
	// State is the supervisor's: running, frozen or stopped.
	State string `json:"state"`
}

type demo struct {
	lab       string // the supervisor's address
	dir       string
	nodes     []*node
	auto      bool
	tutorial  bool
	lessonSel []int // lesson numbers to walk, 1-based
	allLesson bool  // every lesson the cluster's lessons.json has
	steps     int
	in        *bufio.Reader
	out       io.Writer
	client    *http.Client // no redirects: a refusal is shown as it is
	// kv is the project's Go client: the tutorial's writes, as a program
	// would do them (it finds the leader, follows redirects, never sends a
	// write twice). The lessons write to the node a step names, as the page
	// does.
	kv *client.Client
	// walked: the lesson steps walked, by id, in order (for the tests).
	walked []string
}

func run(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	d, err := newDemo(ctx, args, in, out)
	if err != nil {
		return err
	}
	defer d.kv.Close()
	return d.walk(ctx)
}

func newDemo(ctx context.Context, args []string, in io.Reader, out io.Writer) (*demo, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	labAddr := fs.String("lab", "127.0.0.1:6080", "the lab supervisor that make cluster started (its API acts on the processes)")
	dir := fs.String("dir", "cluster", "make cluster's directory (the tutorial's snapshots are read from it)")
	auto := fs.Bool("auto", false, "run unattended: no waiting for Enter, and check each step's outcome")
	tutorial := fs.Bool("tutorial", true, "walk the tutorial's section 4 first")
	lessons := fs.String("lessons", "all", "the page's lessons to walk: all, or their numbers, comma-separated (\"\": none)")
	fs.Usage = func() {
		fmt.Fprintln(out, "demo: the tutorial's section 4, then the page's lessons, narrated, on the make cluster nodes (make demo, or make demo AUTO=1).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	d := &demo{
		lab: *labAddr, dir: *dir, auto: *auto, tutorial: *tutorial,
		in: bufio.NewReader(in), out: out,
		client: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	d.allLesson = *lessons == "all"
	for _, f := range strings.FieldsFunc(*lessons, func(r rune) bool { return r == ',' || r == ' ' }) {
		if d.allLesson {
			break
		}
		i, err := strconv.Atoi(f)
		if err != nil || i < 1 {
			return nil, fmt.Errorf("-lessons %q: want lesson numbers, e.g. 1,4", *lessons)
		}
		d.lessonSel = append(d.lessonSel, i)
	}
	var err error
	if d.nodes, err = d.supervised(ctx); err != nil {
		return nil, fmt.Errorf("the lab supervisor at %s: %w (start the cluster with make cluster)", d.lab, err)
	}
	var addrs []string
	for _, n := range d.nodes {
		addrs = append(addrs, n.HTTP)
	}
	if d.kv, err = client.New(addrs); err != nil {
		return nil, err
	}
	return d, nil
}

// walk is the demo itself: the tutorial, then the lessons.
func (d *demo) walk(ctx context.Context) error {
	d.say(`stcache demo: the tutorial's section 4, then the page's lessons, step by step.

Open the lab's page in a browser now: http://%s/
It draws every node from its own event stream; the lessons there are the
ones this demo walks, in the same words.`, d.lab)
	if d.tutorial {
		if err := d.walkTutorial(ctx); err != nil {
			return err
		}
	} else if err := d.startAll(ctx); err != nil {
		return err
	}
	if d.allLesson || len(d.lessonSel) > 0 {
		if err := d.walkLessons(ctx); err != nil {
			return err
		}
	}
	d.say(`
The cluster keeps running: try your own faults from the page, and stop it
with: make stop`)
	return nil
}

// walkTutorial is the tutorial's section 4.
func (d *demo) walkTutorial(ctx context.Context) error {
	d.step("Start the cluster", `make cluster's lab supervisor started the nodes: node1 with -bootstrap (a
one-node cluster, so it elects itself leader), the others with -join: they
ask node1 to add them as voters. Any node that is not running is started now.
On the page: a circle per node, one gold (the leader); the term in the middle.`)
	if err := d.startAll(ctx); err != nil {
		return err
	}
	leader, err := d.waitLeader(ctx, nil, 60*time.Second)
	if err != nil {
		return err
	}
	d.ok("%s leads; all %d nodes are voters", leader.Name, len(d.nodes))

	d.step("Write through the leader (4.1)", `curl '%s/set?key=hello&value=world'
The leader appends the write to its log (L moves), sends it to the followers,
and once a majority has it on disk it is committed (C moves): then the
leader applies it to its map (A moves) and answers ok. Followers learn of the
commit with the next message and apply a few milliseconds later.
On the page: watch the three markers move on each log strip, leader first.`, leader.HTTP)
	idx, err := d.set(ctx, "hello", "world")
	if err != nil {
		return err
	}
	d.ok("ok, carried by log entry %d", idx)

	followers := d.others(leader)
	d.step("Read from the followers (4.1)", `curl '%s/get?key=hello'   and   curl '%s/get?key=hello'
Any node answers reads from its own map. A follower that has not yet applied
the entry answers the old value (a stale read): that is why the tutorial's
reads are "eventually" consistent. A follower refuses writes with the
tutorial's words, and says where the leader is (307).`, followers[0].HTTP, followers[1].HTTP)
	for _, f := range followers {
		if err := d.waitValue(ctx, f, "hello", "world"); err != nil {
			return err
		}
		d.ok("%s answers world", f.Name)
	}
	code, body, hdr, err := d.get(followers[0], "/set?key=hello&value=other")
	if err != nil {
		return err
	}
	if code != 307 || body != "write method not allowed\n" {
		return fmt.Errorf("a write on follower %s answered %d %q, want 307 write method not allowed", followers[0].Name, code, body)
	}
	d.ok("a write on %s: 307 %q, leader at %s", followers[0].Name, strings.TrimSpace(body), hdr.Get("X-Raft-Leader"))

	d.step("A stale read, on purpose", `Freeze %s (SIGSTOP through the lab supervisor: frozen, like a long GC
pause), write hello=raft on the leader (a majority is still up, so it
commits), then thaw %s and read from it at once: it may still answer
world until it has caught up.
consistency=strong reads are never stale: only the leader serves them, after
checking with a majority that it still leads.
On the page: %s is drawn frozen, and its strip stops while it is.`, followers[1].Name, followers[1].Name, followers[1].Name)
	stale, err := d.staleRead(ctx, followers[1])
	if err != nil {
		return err
	}
	d.ok("%s answered %q right after waking up (%s)", followers[1].Name, stale, map[bool]string{true: "stale: it had not caught up yet", false: "it had already caught up"}[stale == "world"])
	if err := d.waitValue(ctx, followers[1], "hello", "raft"); err != nil {
		return err
	}
	via, err := client.New([]string{followers[1].HTTP})
	if err != nil {
		return err
	}
	defer via.Close()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	v, err := via.GetStrong(sctx, "hello")
	cancel()
	if err != nil || v != "raft" {
		return fmt.Errorf("strong read via %s: %q %v", followers[1].Name, v, err)
	}
	d.ok("a strong read by a client given only %s's address (it finds the leader) answers raft", followers[1].Name)

	d.step("Snapshots (4.2)", `Every node saves its map to disk on its own once enough entries piled up
(-snapshot-threshold 2) and Raft checks (every -snapshot-interval: 20 s to
40 s with the tutorial's settings). The snapshot is <dir>/snapshots/<id>/state.bin
(the map as JSON) plus meta.json; the log before it can then be dropped.
On the page: the S marker jumps to the A marker, and the timeline says "saved a snapshot".`)
	for i := range 3 {
		if _, err := d.set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
			return err
		}
	}
	if err := d.waitSnapshots(ctx, 90*time.Second); err != nil {
		return err
	}
	d.ok("every node has a snapshot holding the keys")

	restart := followers[0]
	d.step("Restart from a snapshot (4.2)", `Stop %s (SIGTERM, as from a terminal) and have the lab supervisor start it
again: it loads its snapshot, replays the few log entries after it, and is
back with all the data.
On the page: %s turns grey (unreachable), then comes back with its S marker
where it was, and catches up from there.`, restart.Name, restart.Name)
	if err := d.terminate(ctx, restart); err != nil {
		return err
	}
	if err := d.proc(ctx, restart, "restart"); err != nil {
		return err
	}
	if err := d.waitValue(ctx, restart, "k2", "v2"); err != nil {
		return err
	}
	d.ok("%s restarted and serves k2=v2", restart.Name)

	d.step("Kill the leader (4.3)", `The demo has the lab supervisor kill %s (%s) with SIGKILL, as kill -9 does.
The followers expect a message from the leader about every 100 ms; after about
1 s of silence one of them becomes a candidate, asks the others for votes in a
new term, and wins with a majority. Writes then go to the new leader.
On the page: %s goes grey, a follower turns orange (candidate), vote requests
fly, the term goes up, and one node turns gold.`, leader.Name, d.pidString(ctx, leader), leader.Name)
	old := leader
	if err := d.proc(ctx, old, "crash"); err != nil {
		return err
	}
	leader, err = d.waitLeader(ctx, old, 30*time.Second)
	if err != nil {
		return err
	}
	if _, err := d.set(ctx, "after", "failover"); err != nil {
		return err
	}
	d.ok("%s leads now and takes writes", leader.Name)

	d.step("The old leader comes back (4.3)", `Start %s again. It still believes in its old term until it hears the new
leader, then becomes a follower and catches up on what it missed.
On the page: %s turns blue (follower), and its strip fills up to the others'.`, old.Name, old.Name)
	if err := d.proc(ctx, old, "restart"); err != nil {
		return err
	}
	if err := d.waitValue(ctx, old, "after", "failover"); err != nil {
		return err
	}
	st, err := d.status(ctx, old)
	if err != nil {
		return err
	}
	if st.State != "Follower" {
		return fmt.Errorf("%s came back as %s, want Follower", old.Name, st.State)
	}
	d.ok("%s is a follower of %s and has every write", old.Name, leader.Name)
	d.say("\nThat is the tutorial's section 4.")
	return nil
}

// ---- narration ----

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

// step prints a step's explanation and, unless -auto, waits for Enter.
func (d *demo) step(title, format string, a ...any) {
	d.steps++
	d.say("\n== %d. %s ==", d.steps, title)
	d.say(format, a...)
	d.pause()
}

func (d *demo) pause() {
	if !d.auto {
		fmt.Fprint(d.out, "[Enter to run it] ")
		_, _ = d.in.ReadString('\n') // EOF: carry on, as with -auto
	}
}

func (d *demo) ok(format string, a ...any) { d.say("  ✓ "+format, a...) }

// ---- the supervisor ----

// supervised is the supervisor's list of the nodes, as the page reads it.
func (d *demo) supervised(ctx context.Context) ([]*node, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.lab+"/lab-api/nodes", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /lab-api/nodes: %s", resp.Status)
	}
	var list []*node
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET /lab-api/nodes: %w", err)
	}
	if len(list) < 3 {
		return nil, fmt.Errorf("%d nodes: the demo wants at least three", len(list))
	}
	return list, nil
}

// proc asks the supervisor to crash, restart, freeze or thaw n, as the
// page's node menu does.
func (d *demo) proc(ctx context.Context, n *node, action string) error {
	r := d.request(ctx, "http://"+d.lab, "POST", "/lab-api/nodes/"+url.PathEscape(n.Name)+"/"+action, nil, 30*time.Second)
	if !r.ok {
		return fmt.Errorf("%s %s: %s", action, n.Name, r.answer())
	}
	return nil
}

// procState is n's process state as the supervisor sees it now.
func (d *demo) procState(ctx context.Context, n *node) (*node, error) {
	list, err := d.supervised(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range list {
		if p.Name == n.Name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%s is not listed by the supervisor", n.Name)
}

func (d *demo) pidString(ctx context.Context, n *node) string {
	p, err := d.procState(ctx, n)
	if err != nil {
		return "pid unknown"
	}
	return "pid " + strconv.Itoa(p.PID)
}

// startAll has the supervisor start every node that is not running, and
// waits until each answers.
func (d *demo) startAll(ctx context.Context) error {
	for _, n := range d.nodes {
		p, err := d.procState(ctx, n)
		if err != nil {
			return err
		}
		switch p.State {
		case "stopped":
			if err := d.proc(ctx, n, "restart"); err != nil {
				return err
			}
		case "frozen":
			if err := d.proc(ctx, n, "thaw"); err != nil {
				return err
			}
		}
	}
	for _, n := range d.nodes {
		if err := d.poll(ctx, 30*time.Second, n.Name+" to answer", func() error {
			_, err := d.status(ctx, n)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// terminate stops n with SIGTERM, as a terminal would, and waits until the
// supervisor sees it stopped (it stays the supervisor's to restart).
func (d *demo) terminate(ctx context.Context, n *node) error {
	p, err := d.procState(ctx, n)
	if err != nil {
		return err
	}
	if p.State != "running" || p.PID <= 0 {
		return fmt.Errorf("%s is %s, not running", n.Name, p.State)
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal %s: %w", n.Name, err)
	}
	return d.poll(ctx, 30*time.Second, n.Name+" to exit", func() error {
		p, err := d.procState(ctx, n)
		if err != nil {
			return err
		}
		if p.State != "stopped" {
			return fmt.Errorf("still %s", p.State)
		}
		return nil
	})
}

func (d *demo) others(n *node) []*node {
	var o []*node
	for _, m := range d.nodes {
		if m != n {
			o = append(o, m)
		}
	}
	return o
}

// ---- HTTP ----

// nodeStatus is a node's /status as the client package reads it, plus the
// lab's faults in force, which only the lab's tools need.
type nodeStatus struct {
	client.Status
	Lab *struct {
		Cut []string `json:"cut"`
	} `json:"lab"`
}

func (s *nodeStatus) hasServer(id string) bool {
	return slices.ContainsFunc(s.Servers, func(sv client.Server) bool { return sv.ID == id })
}

func (d *demo) status(ctx context.Context, n *node) (*nodeStatus, error) {
	r := d.request(ctx, "http://"+n.HTTP, "GET", "/status", nil, 5*time.Second)
	if !r.ok {
		return nil, fmt.Errorf("%s /status: %s", n.Name, r.answer())
	}
	var s nodeStatus
	if err := json.Unmarshal([]byte(r.text), &s); err != nil {
		return nil, fmt.Errorf("%s /status: %w", n.Name, err)
	}
	return &s, nil
}

func (d *demo) get(n *node, path string) (int, string, http.Header, error) {
	resp, err := d.client.Get("http://" + n.HTTP + path)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// set writes through the leader, as a program would, and returns the
// write's log index.
func (d *demo) set(ctx context.Context, k, v string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	idx, err := d.kv.Set(ctx, k, v)
	if err != nil {
		return 0, fmt.Errorf("set %s=%s: %w", k, v, err)
	}
	return idx, nil
}

// waitLeader waits for a writable leader among the running nodes, other
// than not, with every node a voter.
func (d *demo) waitLeader(ctx context.Context, not *node, timeout time.Duration) (*node, error) {
	var l *node
	err := d.poll(ctx, timeout, "a leader", func() error {
		for _, n := range d.nodes {
			if n == not {
				continue
			}
			if s, err := d.status(ctx, n); err == nil && s.State == "Leader" && s.Writable && len(s.Servers) == len(d.nodes) {
				l = n
				return nil
			}
		}
		return fmt.Errorf("no writable leader with %d voters yet", len(d.nodes))
	})
	return l, err
}

func (d *demo) waitValue(ctx context.Context, n *node, k, want string) error {
	return d.poll(ctx, 30*time.Second, fmt.Sprintf("%s to answer %s=%s", n.Name, k, want), func() error {
		code, body, _, err := d.get(n, "/get?key="+url.QueryEscape(k))
		if err != nil {
			return err
		}
		if code != 200 || body != want+"\n" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}

// staleRead freezes f, writes hello=raft, thaws f and reads at once.
func (d *demo) staleRead(ctx context.Context, f *node) (string, error) {
	if err := d.proc(ctx, f, "freeze"); err != nil {
		return "", err
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = d.proc(context.Background(), f, "thaw") // best effort: the error that brought us here is the one to report
		}
	}()
	if _, err := d.set(ctx, "hello", "raft"); err != nil {
		return "", err
	}
	if err := d.proc(ctx, f, "thaw"); err != nil {
		return "", err
	}
	thawed = true
	_, body, _, err := d.get(f, "/get?key=hello")
	return strings.TrimSpace(body), err
}

// waitSnapshots waits until every node has a snapshot whose state.bin holds
// k2, nudging with writes so a node that just snapshotted gets entries
// enough for the next one.
func (d *demo) waitSnapshots(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	return d.poll(ctx, timeout, "a snapshot on every node", func() error {
		for _, n := range d.nodes {
			m, err := d.snapshot(n)
			if err != nil {
				return err
			}
			if m["k2"] != "v2" {
				_, _ = d.set(ctx, "nudge", time.Now().Format(time.RFC3339Nano)) // best effort
				return fmt.Errorf("%s's snapshot has no k2 yet", n.Name)
			}
		}
		d.ok("snapshots after %v", time.Since(start).Round(time.Second))
		return nil
	})
}

func (d *demo) snapshot(n *node) (map[string]string, error) {
	files, _ := filepath.Glob(filepath.Join(d.dir, n.Name, "snapshots", "*", "state.bin"))
	if len(files) == 0 {
		return nil, fmt.Errorf("%s has no snapshot yet in %s", n.Name, filepath.Join(d.dir, n.Name, "snapshots"))
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		return nil, err // raft may be replacing it: look again
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s state.bin: %w", n.Name, err)
	}
	return m, nil
}

// poll retries cond every 100 ms until it succeeds or timeout passes.
func (d *demo) poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s: %w", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
