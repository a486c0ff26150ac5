// Command demo walks through the tutorial's section 4 on the `make cluster`
// nodes, one step at a time, saying what each step does in Raft terms and
// what to look at in the live view (/ui). It waits for Enter between steps;
// with -auto it runs unattended and checks each step's outcome, exiting 1 on
// the first that fails (make demo AUTO=1; a test runs it).
//
// It uses make cluster's conventions: node i has its data in <dir>/node<i>,
// its log in <dir>/node<i>.log and its PID in <dir>/node<i>.pid, so it works
// on a cluster that make cluster started, and make stop stops what it starts.
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
	"os/exec"
	"path/filepath"
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

// node is one of the three tutorial nodes.
type node struct {
	name, http, raft string
}

type demo struct {
	bin, dir  string
	nodeFlags []string
	nodes     []*node
	auto      bool
	steps     int
	in        *bufio.Reader
	out       io.Writer
	client    *http.Client // no redirects: a refusal is shown as it is
	// kv is the project's Go client: writes and status, as a program
	// would do them (it finds the leader, follows redirects, never sends
	// a write twice). Reads that must come from one given node, and the
	// refusal shown as it is, stay plain HTTP.
	kv *client.Client
}

func run(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	bin := fs.String("bin", "./stcached", "the stcached binary")
	dir := fs.String("dir", "cluster", "make cluster's directory: node data, logs and PID files")
	httpAddrs := fs.String("http", "127.0.0.1:6000,127.0.0.1:6001,127.0.0.1:6002", "the three nodes' HTTP addresses")
	raftAddrs := fs.String("raft", "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002", "the three nodes' Raft addresses")
	nodeFlags := fs.String("node-flags", "", "extra flags for nodes the demo starts (e.g. \"-snapshot-interval 1s\")")
	auto := fs.Bool("auto", false, "run unattended: no waiting for Enter, and check each step's outcome")
	fs.Usage = func() {
		fmt.Fprintln(out, "demo: the tutorial's section 4, narrated, on the make cluster nodes (make demo, or make demo AUTO=1).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	hs, rs := strings.Split(*httpAddrs, ","), strings.Split(*raftAddrs, ",")
	if len(hs) != 3 || len(rs) != 3 {
		return errors.New("-http and -raft want three comma-separated addresses")
	}
	d := &demo{
		bin: *bin, dir: *dir, nodeFlags: strings.Fields(*nodeFlags), auto: *auto,
		in: bufio.NewReader(in), out: out,
		client: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	for i := range 3 {
		d.nodes = append(d.nodes, &node{name: fmt.Sprintf("node%d", i+1), http: hs[i], raft: rs[i]})
	}
	kv, err := client.New(hs)
	if err != nil {
		return err
	}
	defer kv.Close()
	d.kv = kv
	return d.walk(ctx)
}

// walk is the demo itself: each step narrates, waits, acts and checks.
func (d *demo) walk(ctx context.Context) error {
	d.say(`stcache demo: the tutorial's section 4, step by step.

Open the live view in a browser now: http://%s/ui
Every node serves it; it draws all three nodes from their own event streams
(node1's relayed by node2: browsers refuse port 6000).`, d.nodes[min(1, len(d.nodes)-1)].http)

	d.step("Start the cluster", `node1 starts with -bootstrap: a one-node cluster, so it elects itself leader.
node2 and node3 start with -join: they ask node1 to add them as voters.
In /ui: three circles, one gold (the leader); the term in the middle.`)
	for _, n := range d.nodes {
		if err := d.ensureRunning(n); err != nil {
			return err
		}
	}
	leader, err := d.waitLeader(ctx, nil, 60*time.Second)
	if err != nil {
		return err
	}
	d.ok("%s leads; all three nodes are voters", leader.name)

	d.step("Write through the leader (4.1)", `curl '%s/set?key=hello&value=world'
The leader appends the write to its log (L moves), sends it to the followers,
and once a majority (2 of 3) has it on disk it is committed (C moves): then the
leader applies it to its map (A moves) and answers ok. Followers learn of the
commit with the next message and apply a few milliseconds later.
In /ui: watch the three markers move on each log strip, leader first.`, leader.http)
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
tutorial's words, and says where the leader is (307).`, followers[0].http, followers[1].http)
	for _, f := range followers {
		if err := d.waitValue(ctx, f, "hello", "world"); err != nil {
			return err
		}
		d.ok("%s answers world", f.name)
	}
	code, body, hdr, err := d.get(d.client, followers[0], "/set?key=hello&value=other")
	if err != nil {
		return err
	}
	if code != 307 || body != "write method not allowed\n" {
		return fmt.Errorf("a write on follower %s answered %d %q, want 307 write method not allowed", followers[0].name, code, body)
	}
	d.ok("a write on %s: 307 %q, leader at %s", followers[0].name, strings.TrimSpace(body), hdr.Get("X-Raft-Leader"))

	d.step("A stale read, on purpose", `Stop %s (SIGSTOP: frozen, like a long GC pause), write hello=raft on the
leader (2 of 3 is still a majority, so it commits), then let %s run again
and read from it at once: it may still answer world until it has caught up.
consistency=strong reads are never stale: only the leader serves them, after
checking with a majority that it still leads.
In /ui: %s's strip stops while it is frozen; the leader's link to it turns red.`, followers[1].name, followers[1].name, followers[1].name)
	stale, err := d.staleRead(ctx, leader, followers[1])
	if err != nil {
		return err
	}
	d.ok("%s answered %q right after waking up (%s)", followers[1].name, stale, map[bool]string{true: "stale: it had not caught up yet", false: "it had already caught up"}[stale == "world"])
	if err := d.waitValue(ctx, followers[1], "hello", "raft"); err != nil {
		return err
	}
	via, err := client.New([]string{followers[1].http})
	if err != nil {
		return err
	}
	defer via.Close()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	v, err := via.GetStrong(sctx, "hello")
	cancel()
	if err != nil || v != "raft" {
		return fmt.Errorf("strong read via %s: %q %v", followers[1].name, v, err)
	}
	d.ok("a strong read by a client given only %s's address (it finds the leader) answers raft", followers[1].name)

	d.step("Snapshots (4.2)", `Every node saves its map to disk on its own once enough entries piled up
(-snapshot-threshold 2) and Raft checks (every -snapshot-interval: 20 s to
40 s with the tutorial's settings). The snapshot is <dir>/snapshots/<id>/state.bin
(the map as JSON) plus meta.json; the log before it can then be dropped.
In /ui: the S marker jumps to the A marker, and the timeline says "saved a snapshot".`)
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
	d.step("Restart from a snapshot (4.2)", `Stop %s (SIGTERM) and start it again: it loads its snapshot, replays
the few log entries after it, and is back with all the data.
In /ui: %s turns grey (unreachable), then comes back with its S marker where
it was, and catches up from there.`, restart.name, restart.name)
	if err := d.stop(restart, syscall.SIGTERM); err != nil {
		return err
	}
	if err := d.ensureRunning(restart); err != nil {
		return err
	}
	if err := d.waitValue(ctx, restart, "k2", "v2"); err != nil {
		return err
	}
	d.ok("%s restarted and serves k2=v2", restart.name)

	d.step("Kill the leader (4.3)", `The demo kills %s (%s) with kill -9. The followers expect a message from the leader about
every 100 ms; after about 1 s of silence one of them becomes a candidate, asks
the others for votes in a new term, and wins with a majority (itself and the
other survivor). Writes then go to the new leader.
In /ui: %s goes grey, a follower turns orange (candidate), vote requests fly,
the term goes up, and one node turns gold.`, leader.name, d.pidString(leader), leader.name)
	old := leader
	if err := d.stop(old, syscall.SIGKILL); err != nil {
		return err
	}
	leader, err = d.waitLeader(ctx, old, 30*time.Second)
	if err != nil {
		return err
	}
	if _, err := d.set(ctx, "after", "failover"); err != nil {
		return err
	}
	d.ok("%s leads now and takes writes", leader.name)

	d.step("The old leader comes back (4.3)", `Start %s again. It still believes in its old term until it hears the new
leader, then becomes a follower and catches up on what it missed.
In /ui: %s turns blue (follower), and its strip fills up to the others'.`, old.name, old.name)
	if err := d.ensureRunning(old); err != nil {
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
		return fmt.Errorf("%s came back as %s, want Follower", old.name, st.State)
	}
	d.ok("%s is a follower of %s and has every write", old.name, leader.name)

	d.say(`
That is the tutorial's section 4. The cluster keeps running: try your own
kills and writes while watching /ui, and stop it with: make stop`)
	return nil
}

// ---- narration ----

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

// step prints a step's explanation and, unless -auto, waits for Enter.
func (d *demo) step(title, format string, a ...any) {
	d.steps++
	d.say("\n== %d. %s ==", d.steps, title)
	d.say(format, a...)
	if !d.auto {
		fmt.Fprint(d.out, "[Enter to run it] ")
		_, _ = d.in.ReadString('\n') // EOF: carry on, as with -auto
	}
}

func (d *demo) ok(format string, a ...any) { d.say("  ✓ "+format, a...) }

// ---- the nodes ----

func (d *demo) pidFile(n *node) string { return filepath.Join(d.dir, n.name+".pid") }

func (d *demo) pid(n *node) int {
	b, err := os.ReadFile(d.pidFile(n))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func (d *demo) pidString(n *node) string { return "pid " + strconv.Itoa(d.pid(n)) }

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// ensureRunning starts n as make cluster does, unless it runs already.
func (d *demo) ensureRunning(n *node) error {
	if alive(d.pid(n)) {
		return nil
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	args := []string{"-node", n.name, "-dir", filepath.Join(d.dir, n.name), "-http", n.http, "-raft", n.raft}
	if n == d.nodes[0] {
		args = append(args, "-bootstrap") // a no-op once it has state
	} else {
		args = append(args, "-join", d.nodes[0].http)
	}
	args = append(args, d.nodeFlags...)
	logf, err := os.OpenFile(filepath.Join(d.dir, n.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== demo: starting %s\n", n.name)
	cmd := exec.Command(d.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C that ends the demo leaves the
	// cluster running, as make cluster's nodes are.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	// Not waited for: the node outlives the demo, as with make cluster.
	if err := os.WriteFile(d.pidFile(n), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reaps it if it exits while the demo runs
	return d.poll(context.Background(), 30*time.Second, n.name+" to answer", func() error {
		_, err := d.status(context.Background(), n)
		return err
	})
}

// stop sends sig to n and waits until the process is gone.
func (d *demo) stop(n *node, sig syscall.Signal) error {
	pid := d.pid(n)
	if !alive(pid) {
		return fmt.Errorf("%s is not running", n.name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", n.name, err)
	}
	return d.poll(context.Background(), 30*time.Second, n.name+" to exit", func() error {
		if alive(pid) {
			return errors.New("still running")
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

// status is one node's own /status (no redirects, no other member).
func (d *demo) status(ctx context.Context, n *node) (*client.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return d.kv.StatusOf(ctx, n.http)
}

func (d *demo) get(c *http.Client, n *node, path string) (int, string, http.Header, error) {
	resp, err := c.Get("http://" + n.http + path)
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
// than not.
func (d *demo) waitLeader(ctx context.Context, not *node, timeout time.Duration) (*node, error) {
	var l *node
	err := d.poll(ctx, timeout, "a leader", func() error {
		for _, n := range d.nodes {
			if n == not {
				continue
			}
			if s, err := d.status(ctx, n); err == nil && s.State == "Leader" && s.Writable && len(s.Servers) == 3 {
				l = n
				return nil
			}
		}
		return errors.New("no writable leader with three voters yet")
	})
	return l, err
}

func (d *demo) waitValue(ctx context.Context, n *node, k, want string) error {
	return d.poll(ctx, 30*time.Second, fmt.Sprintf("%s to answer %s=%s", n.name, k, want), func() error {
		code, body, _, err := d.get(d.client, n, "/get?key="+url.QueryEscape(k))
		if err != nil {
			return err
		}
		if code != 200 || body != want+"\n" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}

// staleRead freezes f, writes hello=raft, wakes f and reads at once.
func (d *demo) staleRead(ctx context.Context, leader, f *node) (string, error) {
	pid := d.pid(f)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return "", err
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	if _, err := d.set(ctx, "hello", "raft"); err != nil {
		return "", err
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return "", err
	}
	resumed = true
	_, body, _, err := d.get(d.client, f, "/get?key=hello")
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
				return fmt.Errorf("%s's snapshot has no k2 yet", n.name)
			}
		}
		d.ok("snapshots after %v", time.Since(start).Round(time.Second))
		return nil
	})
}

func (d *demo) snapshot(n *node) (map[string]string, error) {
	files, _ := filepath.Glob(filepath.Join(d.dir, n.name, "snapshots", "*", "state.bin"))
	if len(files) == 0 {
		return nil, fmt.Errorf("%s has no snapshot yet", n.name)
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		return nil, err // raft may be replacing it: look again
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s state.bin: %w", n.name, err)
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
