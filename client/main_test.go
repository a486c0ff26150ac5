package client_test

// The harness: real stcached processes on loopback (random free ports,
// temporary data directories), built from the repository at test time. One
// plain cluster is started by TestMain and shared by the tests and the
// examples; tests that need another kind (TLS, a token) start their own.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// daemonBin is stcached, built once by TestMain.
	daemonBin string
	// shared is the plain 3-node cluster of the tests and the examples.
	shared *cluster
	// addrs are the shared cluster's HTTP addresses: the examples' members.
	addrs []string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "stcache-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	daemonBin = filepath.Join(tmp, "stcached")
	if out, err := exec.Command("go", "build", "-o", daemonBin, "..").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build stcached: %v\n%s", err, out)
		return 1
	}
	// A small cap, so that TestErrors can fill it cheaply.
	c, err := startCluster(filepath.Join(tmp, "shared"), clusterOpts{flags: []string{"-max-memory", "4MiB"}})
	if c != nil {
		defer c.stopAll()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the shared cluster: %v\n", err)
		if c != nil {
			c.dumpLogs(os.Stderr)
		}
		return 1
	}
	shared, addrs = c, c.httpAddrs()
	code := m.Run()
	if code != 0 {
		c.dumpLogs(os.Stderr)
	}
	return code
}

// freeAddr returns a loopback address whose port is free now and was not
// returned before, from below the kernel's ephemeral range (so no outgoing
// connection takes it before the node binds it).
func freeAddr() (string, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[port] = true
		return a, nil
	}
	return "", errors.New("no free port")
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// node is one stcached process.
type node struct {
	name, http, raft, dir, logPath string
	args                           []string // every flag of its start

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start %s %s\n", n.name, strings.Join(n.args, " "))
	cmd := exec.Command(daemonBin, n.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited = cmd, exited
	go func() {
		_ = cmd.Wait() // killed on purpose, mostly
		logf.Close()
		close(exited)
	}()
	return nil
}

func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(sig) // it may have exited
	}
}

// freeze stops the process (SIGSTOP) and waits until it is stopped.
func (n *node) freeze() error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	n.signal(syscall.SIGSTOP)
	return waitStopped(cmd.Process.Pid)
}

// kill ends the process (SIGKILL) and waits for it.
func (n *node) kill() {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return
	}
	n.signal(syscall.SIGKILL)
	<-exited
}

// cluster is 3 nodes started the tutorial's way: node1 bootstraps, the
// others join it.
type cluster struct {
	nodes  []*node
	scheme string
	hc     *http.Client // for the harness's own /status polls
}

type clusterOpts struct {
	flags   []string    // for every node
	certDir string      // TLS with <certDir>/127.0.0.1.pem etc.
	tls     *tls.Config // how the harness trusts the nodes, with certDir
}

func startCluster(dir string, o clusterOpts) (*cluster, error) {
	c := &cluster{scheme: "http://", hc: &http.Client{Timeout: 5 * time.Second}}
	flags := o.flags
	if o.certDir != "" {
		c.scheme = "https://"
		c.hc.Transport = &http.Transport{TLSClientConfig: o.tls}
		flags = append(flags, "-tls-cert", filepath.Join(o.certDir, "127.0.0.1.pem"),
			"-tls-key", filepath.Join(o.certDir, "127.0.0.1-key.pem"), "-tls-ca", filepath.Join(o.certDir, "ca.pem"))
	}
	for i := range 3 {
		h, err := freeAddr()
		if err != nil {
			return c, err
		}
		r, err := freeAddr()
		if err != nil {
			return c, err
		}
		name := fmt.Sprintf("node%d", i+1)
		n := &node{name: name, http: h, raft: r, dir: filepath.Join(dir, name), logPath: filepath.Join(dir, name+".log")}
		n.args = append([]string{"-node", name, "-dir", n.dir, "-http", h, "-raft", r}, flags...)
		if i == 0 {
			n.args = append(n.args, "-bootstrap")
		} else {
			n.args = append(n.args, "-join", c.nodes[0].http)
		}
		c.nodes = append(c.nodes, n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, err
	}
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			return c, err
		}
	}
	return c, c.waitConverged(60 * time.Second)
}

func (c *cluster) httpAddrs() []string {
	var a []string
	for _, n := range c.nodes {
		a = append(a, n.http)
	}
	return a
}

func (c *cluster) stopAll() {
	for _, n := range c.nodes {
		n.kill()
	}
}

func (c *cluster) dumpLogs(w io.Writer) {
	for _, n := range c.nodes {
		b, _ := os.ReadFile(n.logPath) // missing: nothing to show
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		fmt.Fprintf(w, "---- %s ----\n%s\n", n.name, b)
	}
}

// status is what the harness reads of /status.
type status struct {
	State      string `json:"state"`
	Leader     string `json:"leader"`
	LeaderHTTP string `json:"leader_http"`
	Writable   bool   `json:"writable"`
	Applied    uint64 `json:"applied_index"`
	Servers    []struct {
		Suffrage string `json:"suffrage"`
	} `json:"servers"`
}

func (c *cluster) status(n *node) (status, error) {
	var s status
	resp, err := c.hc.Get(c.scheme + n.http + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s /status: %d", n.name, resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitConverged waits until every node sees the same leader, writable, and
// three voters.
func (c *cluster) waitConverged(timeout time.Duration) error {
	return poll(timeout, func() error {
		leader := ""
		for _, n := range c.nodes {
			s, err := c.status(n)
			if err != nil {
				return err
			}
			voters := 0
			for _, sv := range s.Servers {
				if sv.Suffrage == "Voter" {
					voters++
				}
			}
			switch {
			case s.Leader == "" || s.LeaderHTTP == "":
				return fmt.Errorf("%s knows no leader", n.name)
			case leader != "" && s.Leader != leader:
				return fmt.Errorf("%s follows %s, others %s", n.name, s.Leader, leader)
			case voters != 3:
				return fmt.Errorf("%s sees %d voters", n.name, voters)
			case s.State == "Leader" && !s.Writable:
				return fmt.Errorf("%s leads but is not writable yet", n.name)
			}
			leader = s.Leader
		}
		return nil
	})
}

// leader returns the node that leads, once one does.
func (c *cluster) leader(t *testing.T) *node {
	t.Helper()
	var l *node
	if err := poll(30*time.Second, func() error {
		for _, n := range c.nodes {
			if s, err := c.status(n); err == nil && s.State == "Leader" && s.Writable {
				l = n
				return nil
			}
		}
		return errors.New("no writable leader")
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

func (c *cluster) others(not *node) []*node {
	var o []*node
	for _, n := range c.nodes {
		if n != not {
			o = append(o, n)
		}
	}
	return o
}

// poll retries cond every 50 ms until it succeeds or timeout passes.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ctxT is a context for one step of a test.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// makeCerts writes a CA and a certificate for 127.0.0.1 into dir with
// cmd/certs (as the root package's tls_test.go does), and returns the
// config that trusts the CA.
func makeCerts(t *testing.T, dir string) *tls.Config {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "certs")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/certs").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/certs: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-dir", dir, "-hosts", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool}
}
