package main

// Test harness: real stcached processes on loopback, random free ports,
// temporary data directories, always cleaned up.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemonPath is the stcached binary built once for the whole test run.
var daemonPath string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "stcached-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "temp dir:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		daemonPath = filepath.Join(dir, "stcached")
		args := []string{"build", "-o", daemonPath}
		if raceEnabled {
			// The daemons run with the race detector too, so a race in
			// the real processes fails the test (see proc.stop).
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build stcached: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that is free now and that
// no other freeAddr call in this test binary has returned. The port comes
// from below the kernel's ephemeral range: a port the kernel handed out for
// a moment (net.Listen on :0) can become, before the node binds it, the
// source port of some outgoing connection (the nodes dial each other all the
// time), and the node then fails with "address already in use".
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo := ephemeralLow()
	for range 1000 {
		port := 10000 + rand.IntN(lo-10000)
		if portsGiven[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // someone else's
		}
		l.Close()
		portsGiven[port] = true
		return addr
	}
	t.Fatalf("free port: none found below %d", lo)
	return ""
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralLow is the bottom of the kernel's ephemeral port range (Linux's
// default when it cannot be read), never below 20000 so there is room under it.
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	return max(lo, 20000)
}

// proc is one stcached process.
type proc struct {
	t       testing.TB
	name    string
	http    string
	raft    string // listen address
	raftAdv string // advertised address (= raft unless behind a proxy)
	dir     string
	logPath string
	extra   []string // flags beyond the addresses, for restarts
	base    []string // flags of every start (TLS, token)
	// wrap, when set, is the command the daemon is started under, which
	// must exec it (nsenter into the full-disk test's mount namespace), so
	// that the process is the daemon and kill, stop and running work.
	wrap     []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	paused   bool
	restarts int
	// secure, when set, is how to talk to a node run with -tls-* and
	// -token-file: HTTPS trusting the test CA, and the token.
	secure *secureClient
}

// secureClient talks to nodes started with TLS and a token.
type secureClient struct {
	client *http.Client
	token  string
}

// newProc describes a node with fresh ports and a fresh data dir; it does not
// start it.
func newProc(t testing.TB, name string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, name: name, http: freeAddr(t), raft: freeAddr(t), dir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, name+".log")}
	p.raftAdv = p.raft
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

func (p *proc) args(extra ...string) []string {
	a := []string{"-node", p.name, "-dir", p.dir, "-http", p.http, "-raft", p.raft,
		"-snapshot-interval", "1s", "-snapshot-threshold", "2"}
	if p.raftAdv != p.raft {
		a = append(a, "-raft-advertise", p.raftAdv)
	}
	a = append(a, p.base...)
	return append(a, extra...)
}

// start runs stcached with the node's addresses plus extra flags.
func (p *proc) start(extra ...string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			p.t.Fatalf("%s: start while running", p.name)
		}
	}
	p.extra = extra
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("%s: log file: %v", p.name, err)
	}
	fmt.Fprintf(logf, "=== start %s %s\n", p.name, strings.Join(p.args(extra...), " "))
	argv := append(append(slices.Clone(p.wrap), daemonPath), p.args(extra...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 exitcode=66")
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatalf("%s: start: %v", p.name, err)
	}
	p.cmd = cmd
	p.paused = false
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
}

// restart starts the node again with the flags of its last start.
func (p *proc) restart() {
	p.t.Helper()
	p.restarts++
	p.start(p.extra...)
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig) // it may have exited already
		switch sig {
		case syscall.SIGSTOP:
			p.paused = true
		case syscall.SIGCONT:
			p.paused = false
		}
	}
}

// kill ends the process with SIGKILL (resuming it first if paused) and waits.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits for the exit, which must be clean (code 0).
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s: no exit 30s after SIGTERM", p.name)
	}
	if err := p.exitError(); err != nil {
		p.t.Fatalf("%s: exit after SIGTERM: %v", p.name, err)
	}
}

func (p *proc) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

func (p *proc) readLog() string {
	b, _ := os.ReadFile(p.logPath) // a missing log reads as empty
	return string(b)
}

func (p *proc) dumpLog() {
	log := p.readLog()
	if len(log) > 20000 {
		log = "...\n" + log[len(log)-20000:]
	}
	p.t.Logf("---- log of %s ----\n%s", p.name, log)
}

// httpClient is for test requests: no redirects followed unless asked.
var httpClient = &http.Client{
	Timeout:       15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// reply is a finished HTTP exchange.
type reply struct {
	code   int
	body   string
	header http.Header
}

// call does GET http://addr+path and returns the reply, or an error if the
// node could not be reached.
func call(addr, path string) (reply, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return reply{}, err
	}
	return exchange(httpClient, req)
}

// exchange sends req with client and reads the whole reply.
func exchange(client *http.Client, req *http.Request) (reply, error) {
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

// call does GET path on p (over HTTPS with its token when p is secure).
func (p *proc) call(path string) (reply, error) {
	if p.secure == nil {
		return call(p.http, path)
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+p.http+path, nil)
	if err != nil {
		return reply{}, err
	}
	if p.secure.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.secure.token)
	}
	return exchange(p.secure.client, req)
}

func (p *proc) get(path string) reply {
	p.t.Helper()
	r, err := p.call(path)
	if err != nil {
		p.t.Fatalf("%s GET %s: %v", p.name, path, err)
	}
	return r
}

// expect asserts a reply's status code and body.
func (p *proc) expect(path string, code int, body string) reply {
	p.t.Helper()
	r := p.get(path)
	if r.code != code || r.body != body {
		p.t.Fatalf("%s GET %s = %d %q, want %d %q", p.name, path, r.code, r.body, code, body)
	}
	return r
}

func (p *proc) status() (status, error) {
	r, err := p.call("/status")
	if err != nil {
		return status{}, err
	}
	var s status
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		return status{}, fmt.Errorf("status %d %q: %w", r.code, r.body, err)
	}
	return s, nil
}

// waitFor polls cond every 50ms until it returns nil or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cluster is a set of nodes started the tutorial's way.
type cluster struct {
	t     testing.TB
	nodes []*proc
}

// startCluster starts n nodes: the first bootstraps, the others join it, and
// waits until every node sees all n voters, the same leader, and its HTTP
// address. setup, if not nil, may adjust each proc before it starts.
func startCluster(t testing.TB, n int, setup func(i int, p *proc)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	for i := 0; i < n; i++ {
		p := newProc(t, fmt.Sprintf("node%d", i+1))
		if setup != nil {
			setup(i, p)
		}
		c.nodes = append(c.nodes, p)
	}
	c.nodes[0].start("-bootstrap")
	for _, p := range c.nodes[1:] {
		p.start("-join", c.nodes[0].http)
	}
	c.waitConverged(60 * time.Second)
	return c
}

// waitConverged waits until every running node reports the same leader, with
// every node of the cluster a voter and the leader's HTTP address known.
func (c *cluster) waitConverged(timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, "cluster to converge", func() error {
		leader := ""
		for _, p := range c.nodes {
			if !p.running() {
				continue
			}
			s, err := p.status()
			if err != nil {
				return err
			}
			if s.Leader == "" || s.LeaderHTTP == "" {
				return fmt.Errorf("%s: no leader known", p.name)
			}
			if leader == "" {
				leader = s.Leader
			} else if leader != s.Leader {
				return fmt.Errorf("%s sees leader %s, others %s", p.name, s.Leader, leader)
			}
			voters := 0
			for _, sv := range s.Servers {
				if sv.Suffrage == "Voter" {
					voters++
				}
			}
			if voters != len(c.nodes) {
				return fmt.Errorf("%s sees %d voters, want %d", p.name, voters, len(c.nodes))
			}
			if s.State == "Leader" && !s.Writable {
				return fmt.Errorf("%s leads but is not writable yet", p.name)
			}
		}
		return nil
	})
}

// restartAll stops every node (SIGTERM, clean exit), starts them all again
// from their data dirs, and waits until they agree on a leader.
func (c *cluster) restartAll() {
	c.t.Helper()
	for _, p := range c.nodes {
		p.stop()
	}
	for _, p := range c.nodes {
		p.restart()
	}
	c.waitConverged(60 * time.Second)
}

// leader returns the running node that reports itself Leader and writable.
func (c *cluster) leader() *proc {
	c.t.Helper()
	return waitLeader(c.t, 30*time.Second, c.nodes, nil)
}

// waitLeader waits until a running node of nodes other than not (nil: any)
// reports itself Leader and writable, and returns it: after the old leader
// is killed, stopped or cut off, it finds its successor.
func waitLeader(t testing.TB, timeout time.Duration, nodes []*proc, not *proc) *proc {
	t.Helper()
	var l *proc
	what := "a writable leader"
	if not != nil {
		what += " other than " + not.name
	}
	waitFor(t, timeout, what, func() error {
		for _, p := range nodes {
			if p == not || !p.running() {
				continue
			}
			if s, err := p.status(); err == nil && s.State == "Leader" && s.Writable {
				l = p
				return nil
			}
		}
		return fmt.Errorf("no running node leads")
	})
	return l
}

func (c *cluster) followers() []*proc {
	l := c.leader()
	var f []*proc
	for _, p := range c.nodes {
		if p != l && p.running() {
			f = append(f, p)
		}
	}
	return f
}

// waitValue waits until p's own (stale) read of key gives want.
func waitValue(t testing.TB, p *proc, key, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, p.name+" to have "+key+"="+want, func() error {
		r, err := p.call("/get?key=" + key)
		if err != nil {
			return err
		}
		if r.code != 200 || r.body != want+"\n" {
			return fmt.Errorf("got %d %q", r.code, r.body)
		}
		return nil
	})
}

// snapshotState reads the JSON object of the node's one snapshot; an error
// while there is none (yet), so it can be polled.
func snapshotState(dir string) (map[string]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if err != nil || len(matches) != 1 {
		return nil, fmt.Errorf("want one snapshot in %s, found %v (%v)", dir, matches, err)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		return nil, err // raft may have just replaced it: poll again
	}
	var m map[string]string
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		return nil, fmt.Errorf("state.bin is not a JSON object of strings: %v\n%s", err, b)
	}
	return m, nil
}

// waitSnapshot waits until p's snapshot passes check. A node may take its
// snapshot between a test's last two writes: with the tutorial's threshold
// of 2 it then waits for two entries past that snapshot, however long, so
// while the check fails this adds an entry through writer now and then, as
// a user's further writes would. It returns how many it added.
func waitSnapshot(t testing.TB, p, writer *proc, check func(map[string]string) error) (fillers int) {
	t.Helper()
	lastFill := time.Now()
	waitFor(t, 30*time.Second, p.name+"'s snapshot", func() error {
		m, err := snapshotState(p.dir)
		if err == nil {
			err = check(m)
		}
		if err != nil && time.Since(lastFill) > time.Second {
			fillers++
			writer.expect(fmt.Sprintf("/set?key=filler&value=%d", fillers), 200, "ok\n")
			lastFill = time.Now()
		}
		return err
	})
	return fillers
}

// runDaemon runs stcached to completion (it must exit by itself within a
// minute) and returns its combined output and exit code.
func runDaemon(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(daemonPath, args...)
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("stcached %v did not exit within a minute:\n%s", args, out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// beside lets one of the package's longest tests run beside another such
// test once the others are done (Go runs parallel tests after the
// sequential ones, -parallel at a time: GOMAXPROCS, 2 here). Those tests
// spend most of their time waiting on elections, timeouts and fsyncs, not
// on the CPU, and each has its own processes, ports (freeAddr never gives a
// port twice) and directories. Only tests that measure no speed and set no
// environment may use it.
func beside(t *testing.T) {
	t.Helper()
	t.Parallel()
}
