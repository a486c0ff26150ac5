package main

// Off loopback: the token, mutual TLS on the Raft port and HTTPS, against
// real processes, with certificates made at test time by cmd/certs.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

var (
	certsOnce sync.Once
	certsPath string
	certsErr  error
)

// makeCerts runs cmd/certs (built once) with args; it returns the directory.
func makeCerts(t *testing.T, dir string, args ...string) string {
	t.Helper()
	certsOnce.Do(func() {
		certsPath = filepath.Join(filepath.Dir(daemonPath), "certs")
		if out, err := exec.Command("go", "build", "-o", certsPath, "./cmd/certs").CombinedOutput(); err != nil {
			certsErr = fmt.Errorf("build cmd/certs: %v\n%s", err, out)
		}
	})
	if certsErr != nil {
		t.Fatal(certsErr)
	}
	out, err := exec.Command(certsPath, append([]string{"-dir", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("certs %v: %v\n%s", args, err, out)
	}
	return dir
}

// testToken is the cluster secret of these tests (at least 16 bytes).
const testToken = "s3cret-token-for-the-tests"

// secureSetup writes the token file and returns a setup for startCluster
// that runs every node with TLS from certDir (host 127.0.0.1) and the token,
// and the token file.
func secureSetup(t *testing.T, certDir string) (func(int, *proc), string) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := secureClientFor(t, certDir, testToken)
	return func(_ int, p *proc) {
		p.base = tlsFlags(certDir, "127.0.0.1", tokenFile)
		p.secure = sc
	}, tokenFile
}

func tlsFlags(certDir, host, tokenFile string) []string {
	f := []string{"-tls-cert", filepath.Join(certDir, host+".pem"), "-tls-key", filepath.Join(certDir, host+"-key.pem"),
		"-tls-ca", filepath.Join(certDir, "ca.pem")}
	if tokenFile != "" {
		f = append(f, "-token-file", tokenFile)
	}
	return f
}

func secureClientFor(t *testing.T, certDir, token string) *secureClient {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(certDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &secureClient{token: token, client: &http.Client{
		Timeout:       15 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// withAuth does one HTTPS request to p with the given Authorization header
// ("" = none).
func withAuth(t *testing.T, p *proc, path, auth string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://"+p.http+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	r, err := exchange(p.secure.client, req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.name, path, err)
	}
	return r
}

// The tutorial's section 4 with a token and TLS everywhere: writes, a
// follower read, a restart, the leader killed; redirects name https.
func TestSecureClusterTutorial(t *testing.T) {
	certs := makeCerts(t, t.TempDir(), "-hosts", "127.0.0.1+localhost")
	setup, _ := secureSetup(t, certs)
	c := startCluster(t, 3, setup)
	l := c.leader()
	f := c.followers()
	l.expect("/set?key=ping&value=pong", 200, "ok\n")
	waitValue(t, f[0], "ping", "pong")
	r := f[0].expect("/set?key=ping&value=other", 307, "write method not allowed\n")
	if want := "https://" + l.http + "/set?key=ping&value=other"; r.header.Get("Location") != want {
		t.Fatalf("Location %q, want %q", r.header.Get("Location"), want)
	}
	if strings.Contains(r.header.Get("Location"), testToken) {
		t.Fatal("the redirect carries the token")
	}
	// A follower restarts and comes back with the data.
	f[1].stop()
	l.expect("/set?key=k1&value=v1", 200, "ok\n")
	f[1].restart()
	waitValue(t, f[1], "k1", "v1")
	// The leader dies; the others elect one over TLS and take writes.
	l.kill()
	nl := waitLeader(t, 30*time.Second, c.nodes, l)
	nl.expect("/set?key=after&value=kill", 200, "ok\n")
	nl.expect("/get?key=ping&consistency=strong", 200, "pong\n")
	l.restart()
	waitValue(t, l, "after", "kill")
}

// Without the token, a wrong one, or the wrong scheme: 401 before anything
// else (even on a follower, even for a malformed request), nothing stored.
// The read-only views stay open; the profiler (-pprof, on node1) does not.
func TestTokenRequired(t *testing.T) {
	certs := makeCerts(t, t.TempDir())
	setup, _ := secureSetup(t, certs)
	c := startCluster(t, 3, func(i int, p *proc) {
		setup(i, p)
		if i == 0 {
			p.base = append(p.base, "-pprof")
		}
	})
	pp := c.nodes[0]
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2", "/debug/pprof/cmdline",
		"/debug/pprof/profile?seconds=1", "/debug/pprof/symbol", "/debug/pprof/trace?seconds=1"} {
		if r := withAuth(t, pp, path, ""); r.code != 401 || r.body != "unauthorized\n" {
			t.Fatalf("-pprof %s without token: %d %.80q, want 401", path, r.code, r.body)
		}
	}
	if r := withAuth(t, pp, "/debug/pprof/cmdline", "Bearer "+testToken); r.code != 200 || !strings.Contains(r.body, "-pprof") {
		t.Fatalf("-pprof cmdline with token: %d %.80q", r.code, r.body)
	}
	l := c.leader()
	f := c.followers()[0]
	for _, auth := range []string{"", "Bearer wrong-token-of-enough-len", "Basic " + testToken, testToken, "Bearer" + testToken, "Bearer " + testToken[:len(testToken)-1]} {
		for _, p := range []*proc{l, f} {
			for _, path := range []string{"/set?key=stolen&value=1", "/set?key=", "/delete?key=ping", "/get?key=ping", "/join?peerAddress=127.0.0.1:1", "/leave?peerAddress=" + f.raftAdv} {
				r := withAuth(t, p, path, auth)
				if r.code != 401 || r.body != "unauthorized\n" || r.header.Get("WWW-Authenticate") != "Bearer" {
					t.Fatalf("%s %s with %q: %d %q %v, want 401 unauthorized", p.name, path, auth, r.code, r.body, r.header)
				}
			}
		}
	}
	l.expect("/get?key=stolen&consistency=strong", 404, "\n")
	if s, _ := l.status(); len(s.Servers) != 3 {
		t.Fatalf("configuration changed by unauthorised requests: %+v", s.Servers)
	}
	// The scheme is case-insensitive.
	if r := withAuth(t, l, "/set?key=ok&value=1", "bearer "+testToken); r.code != 200 {
		t.Fatalf("lower-case bearer: %d %q", r.code, r.body)
	}
	for _, path := range []string{"/status", "/ui", "/ui/app.js", "/metrics"} {
		if r := withAuth(t, f, path, ""); r.code != 200 {
			t.Fatalf("%s without token: %d", path, r.code)
		}
	}
}

// A node whose certificate comes from another CA, or has expired, cannot
// join: the leader cannot verify it on its Raft address (502), and the
// configuration stays as it was. Plaintext and garbage thrown at the TLS
// Raft port change nothing.
func TestTLSRefusesStrangers(t *testing.T) {
	beside(t)
	certs := makeCerts(t, t.TempDir())
	setup, tokenFile := secureSetup(t, certs)
	c := startCluster(t, 3, setup)
	l := c.leader()
	l.expect("/set?key=k&value=v", 200, "ok\n")
	before, _ := l.status()

	other := makeCerts(t, t.TempDir()) // another CA
	// Our CA, but a certificate that expired yesterday.
	expired := t.TempDir()
	for _, f := range []string{"ca.pem", "ca-key.pem"} {
		b, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(expired, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	makeCerts(t, expired, "-hosts", "127.0.0.1", "-days", "-1")
	for _, bad := range []struct{ name, dir, why string }{{"otherca", other, "unknown authority"}, {"expired", expired, "expired"}} {
		p := newProc(t, bad.name)
		setup(0, p)
		p.base = tlsFlags(bad.dir, "127.0.0.1", tokenFile)
		p.start("-join", l.http, "-join-timeout", "5s")
		select {
		case <-p.exited:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: still running after its join timeout", bad.name)
		}
		if p.exitError() == nil || !strings.Contains(p.readLog(), "gave up") {
			t.Fatalf("%s: exit %v, log:\n%s", bad.name, p.exitError(), p.readLog())
		}
		// Asked directly, the leader says why.
		p.start()
		waitFor(t, 20*time.Second, bad.name+" listening", func() error {
			c, err := net.Dial("tcp", p.raft)
			if err == nil {
				c.Close()
			}
			return err
		})
		r := l.get("/join?peerAddress=" + p.raftAdv)
		if r.code != 502 || !strings.Contains(r.body, bad.why) {
			t.Fatalf("join of %s: %d %q, want 502 saying %q", bad.name, r.code, r.body, bad.why)
		}
		p.kill()
	}

	// Plaintext, garbage, and TLS without a client certificate.
	for _, payload := range [][]byte{[]byte("GET / HTTP/1.0\r\n\r\n"), {0, 1, 2, 3, 0xff, 0xfe}, []byte("\x16\x03\x01\x00\xff garbage")} {
		conn, err := net.Dial("tcp", l.raftAdv)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(payload)
		conn.Close()
	}
	if conn, err := tls.Dial("tcp", l.raftAdv, &tls.Config{InsecureSkipVerify: true}); err == nil {
		_, _ = conn.Write([]byte{1, 2, 3})
		_, rerr := conn.Read(make([]byte, 1))
		conn.Close()
		if rerr == nil {
			t.Fatal("a TLS client without a certificate got an answer from the Raft port")
		}
	}
	waitFor(t, 10*time.Second, "the refusals logged", func() error {
		if n := strings.Count(l.readLog(), "refused a raft connection"); n < 4 {
			return fmt.Errorf("%d refusals logged", n)
		}
		return nil
	})
	after, _ := l.status()
	if after.State != "Leader" || after.Term != before.Term || fmt.Sprint(after.Servers) != fmt.Sprint(before.Servers) {
		t.Fatalf("strangers changed the cluster:\nbefore %+v\nafter  %+v", before, after)
	}
	l.expect("/get?key=k&consistency=strong", 200, "v\n")
}

// Files that are missing, unreadable or incomplete stop the node at start
// with one clear line; a non-loopback bind without a token is warned about.
func TestSecurityStartupErrors(t *testing.T) {
	certs := makeCerts(t, t.TempDir())
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte(" tiny \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key, ca := filepath.Join(certs, "127.0.0.1.pem"), filepath.Join(certs, "127.0.0.1-key.pem"), filepath.Join(certs, "ca.pem")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert", cert}, "-tls-cert, -tls-key and -tls-ca must be given together"},
		{[]string{"-tls-cert", cert, "-tls-key", key}, "must be given together"},
		{[]string{"-tls-cert", filepath.Join(dir, "missing.pem"), "-tls-key", key, "-tls-ca", ca}, "missing.pem"},
		{[]string{"-tls-cert", cert, "-tls-key", notPEM, "-tls-ca", ca}, "not.pem"},
		{[]string{"-tls-cert", cert, "-tls-key", key, "-tls-ca", notPEM}, "-tls-ca " + notPEM + ": no PEM certificate"},
		{[]string{"-tls-cert", cert, "-tls-key", key, "-tls-ca", filepath.Join(dir, "nope")}, "read -tls-ca"},
		{[]string{"-token-file", short}, "at least 16 bytes"},
		{[]string{"-token-file", filepath.Join(dir, "nope")}, "read -token-file"},
	} {
		args := append([]string{"-node", "n", "-http", freeAddr(t), "-raft", freeAddr(t), "-bootstrap"}, tc.args...)
		out, code := runDaemon(t, args...)
		if code != 1 || !strings.HasPrefix(lastLine(out), "stcached: ") || !strings.Contains(lastLine(out), tc.want) {
			t.Fatalf("%v: exit %d, last line %q; want 1 and %q", tc.args, code, lastLine(out), tc.want)
		}
	}

	p := newProc(t, "open")
	port := strings.TrimPrefix(p.http, "127.0.0.1:")
	p.start("-bootstrap", "-http", "0.0.0.0:"+port, "-http-advertise", p.http)
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	if n := strings.Count(p.readLog(), "without -token-file"); n != 1 {
		t.Fatalf("want one warning about the open bind, got %d:\n%s", n, p.readLog())
	}
	p.stop()
}

// rpcHeader is the header a Raft server with address addr sends.
func rpcHeader(addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(addr), Addr: []byte(addr)}
}

// raftClientAs is hashicorp/raft's own transport holding the certificate of
// host (from certDir): what a holder of that certificate can send to a node.
func raftClientAs(t *testing.T, certDir, host string) *raft.NetworkTransport {
	t.Helper()
	ts, err := loadTLS(tlsFiles{cert: filepath.Join(certDir, host+".pem"), key: filepath.Join(certDir, host+"-key.pem"), ca: filepath.Join(certDir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := listenRaft("127.0.0.1:0", host+":1", false, ts, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: sl, MaxPool: 2, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger()})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// forgeAppend sends target an AppendEntries as a leader at claim in term,
// whose one entry would replace the first entry of target's log.
func forgeAppend(tr *raft.NetworkTransport, target, claim string, term uint64) error {
	var resp raft.AppendEntriesResponse
	return tr.AppendEntries(raft.ServerID(target), raft.ServerAddress(target), &raft.AppendEntriesRequest{
		RPCHeader: rpcHeader(claim), Term: term,
		Entries: []*raft.Log{{Index: 1, Term: term, Type: raft.LogCommand, Data: []byte("forged")}},
	}, &resp)
}

// With mutual TLS a certificate binds its holder to the members its host
// names. Members on distinct loopback addresses (127.0.0.1-3, all on lo),
// a CA that also signed 127.0.0.4 and 127.0.0.9. A forged AppendEntries
// with a higher term (which would make every node follow that term and drop
// its log for the forged entry) gets nowhere: from a certificate for no
// member's host (refused at the handshake's end), from a member's
// certificate claiming to be the leader (the RPC dropped), or from a member
// removed since (refused). A server joining on its own address is admitted
// while its join is under way, and receives the leader's snapshot through
// the check.
func TestTLSCertificatesBindToMembers(t *testing.T) {
	certs := makeCerts(t, t.TempDir(), "-hosts", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.9")
	secure, tokenFile := secureSetup(t, certs)
	onHost := func(i int, p *proc) {
		secure(i, p)
		host := fmt.Sprintf("127.0.0.%d", i+1)
		p.http = strings.Replace(p.http, "127.0.0.1:", host+":", 1)
		p.raft = strings.Replace(p.raft, "127.0.0.1:", host+":", 1)
		p.raftAdv = p.raft
		// Few entries behind a snapshot: a joining node is sent one.
		p.base = append(tlsFlags(certs, host, tokenFile), "-trailing-logs", "4")
	}
	c := startCluster(t, 3, onHost)
	l := c.leader()
	for i := range 8 {
		l.expect(fmt.Sprintf("/set?key=k%d&value=v%d", i, i), 200, "ok\n")
	}
	// statuses waits until every node holds and has applied the whole log
	// (a follower hears the commit index on the next heartbeat), and
	// returns their statuses.
	statuses := func() map[*proc]status {
		t.Helper()
		m := map[*proc]status{}
		waitFor(t, 10*time.Second, "every node to hold the whole log", func() error {
			for _, p := range c.nodes {
				s, err := p.status()
				if err != nil {
					return err
				}
				m[p] = s
				if s.AppliedIndex != s.LastLogIndex || s.LastLogIndex != m[c.nodes[0]].LastLogIndex {
					return fmt.Errorf("%s: last log index %d, applied %d", p.name, s.LastLogIndex, s.AppliedIndex)
				}
			}
			return nil
		})
		return m
	}
	// unchanged: every node still has its term, leader and log.
	unchanged := func(before map[*proc]status) {
		t.Helper()
		for p, b := range before {
			a, err := p.status()
			if err != nil {
				t.Fatal(err)
			}
			if a.Term != b.Term || a.Leader != b.Leader || a.LastLogIndex != b.LastLogIndex || a.CommitIndex != b.CommitIndex {
				t.Fatalf("%s changed: term %d -> %d, leader %q -> %q, last log index %d -> %d, commit index %d -> %d",
					p.name, b.Term, a.Term, b.Leader, a.Leader, b.LastLogIndex, a.LastLogIndex, b.CommitIndex, a.CommitIndex)
			}
		}
		l.expect("/get?key=k7&consistency=strong", 200, "v7\n")
	}
	logged := func(p *proc, what string) {
		t.Helper()
		waitFor(t, 5*time.Second, p.name+" logging "+what, func() error {
			if !strings.Contains(p.readLog(), what) {
				return fmt.Errorf("not in its log")
			}
			return nil
		})
	}

	t.Run("stranger", func(t *testing.T) {
		before := statuses()
		tr := raftClientAs(t, certs, "127.0.0.9")
		for _, p := range c.nodes {
			for _, claim := range []string{"127.0.0.9:7000", l.raftAdv} {
				if err := forgeAppend(tr, p.raftAdv, claim, before[p].Term+100); err == nil {
					t.Fatalf("%s took an AppendEntries from a certificate for 127.0.0.9 claiming %s", p.name, claim)
				}
			}
		}
		unchanged(before)
		for _, p := range c.nodes {
			logged(p, "refused a raft connection: its certificate names no member's host")
		}
	})

	t.Run("member claiming another", func(t *testing.T) {
		before := statuses()
		f := c.followers()
		host, _, _ := net.SplitHostPort(f[0].raftAdv)
		tr := raftClientAs(t, certs, host)
		// The same client, claiming to be who its certificate names, is
		// heard (a pre-vote changes nothing): what follows is refused for
		// its claim, not for a broken client.
		var pv raft.RequestPreVoteResponse
		if err := tr.RequestPreVote(raft.ServerID(f[1].raftAdv), raft.ServerAddress(f[1].raftAdv),
			&raft.RequestPreVoteRequest{RPCHeader: rpcHeader(f[0].raftAdv), Term: before[f[1]].Term}, &pv); err != nil {
			t.Fatalf("a pre-vote from %s's certificate as itself: %v", f[0].name, err)
		}
		for _, p := range c.nodes {
			if err := forgeAppend(tr, p.raftAdv, l.raftAdv, before[p].Term+100); err == nil {
				t.Fatalf("%s took an AppendEntries from %s's certificate claiming the leader %s", p.name, f[0].name, l.raftAdv)
			}
		}
		unchanged(before)
		logged(f[1], "dropped a raft RPC and its connection: its header claims a server its certificate does not name")
	})

	node4 := newProc(t, "node4")
	t.Run("join", func(t *testing.T) {
		// The leader compacts its log behind a snapshot, so the new node
		// gets the snapshot (data after an InstallSnapshot header).
		waitSnapshot(t, l, l, func(m map[string]string) error {
			if m["k7"] != "v7" {
				return fmt.Errorf("no k7 in the leader's snapshot")
			}
			return nil
		})
		onHost(3, node4)
		node4.start("-join", c.followers()[0].http)
		c.nodes = append(c.nodes, node4)
		c.waitConverged(60 * time.Second)
		waitValue(t, node4, "k7", "v7")
		logged(node4, "Installed remote snapshot")
		c.leader().expect("/set?key=k8&value=v8", 200, "ok\n")
		waitValue(t, node4, "k8", "v8")
	})

	t.Run("removed", func(t *testing.T) {
		l = c.leader()
		l.expect("/leave?peerAddress="+node4.raftAdv, 200, "ok")
		node4.stop()
		c.nodes = c.nodes[:3]
		c.waitConverged(30 * time.Second)
		before := statuses()
		tr := raftClientAs(t, certs, "127.0.0.4")
		for _, p := range c.nodes {
			if err := forgeAppend(tr, p.raftAdv, node4.raftAdv, before[p].Term+100); err == nil {
				t.Fatalf("%s took an AppendEntries from removed node4's certificate", p.name)
			}
		}
		unchanged(before)
		for _, p := range c.nodes {
			logged(p, "names=127.0.0.4")
		}
	})

	// The leader removes itself: the others, which drop its RPCs once they
	// hold the entry that removes it, elect one of them and go on.
	t.Run("leader leaves", func(t *testing.T) {
		old := c.leader()
		old.expect("/leave?peerAddress="+old.raftAdv, 200, "ok")
		old.stop()
		c.nodes = slices.DeleteFunc(c.nodes, func(p *proc) bool { return p == old })
		c.waitConverged(30 * time.Second)
		l = c.leader()
		l.expect("/set?key=k9&value=v9", 200, "ok\n")
		for _, p := range c.nodes {
			waitValue(t, p, "k9", "v9")
		}
	})
}

// The stream layer's admission and its RPC guard, in process: a node's
// listener (certificate 127.0.0.1) under raft's own NetworkTransport, whose
// members are 127.0.0.1 and 127.0.0.2, and clients holding other hosts'
// certificates. The server answers every RPC raft hands it and says whose
// header it carried; a refused or dropped one never reaches it.
func TestRaftAdmission(t *testing.T) {
	certs := makeCerts(t, t.TempDir(), "-hosts", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.9")
	files := func(host string) tlsFiles {
		return tlsFiles{cert: filepath.Join(certs, host+".pem"), key: filepath.Join(certs, host+"-key.pem"), ca: filepath.Join(certs, "ca.pem")}
	}
	ts, err := loadTLS(files("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	sl, err := listenRaft("127.0.0.1:0", "127.0.0.1:7000", false, ts, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	members, vouched := []string{"127.0.0.1:7000", "127.0.0.2:7000"}, []string(nil)
	set := func(m, v []string) {
		mu.Lock()
		defer mu.Unlock()
		members, vouched = m, v
	}
	sl.setPeers(raftPeers{
		members: func() []string { mu.Lock(); defer mu.Unlock(); return members },
		vouched: func() []string { mu.Lock(); defer mu.Unlock(); return vouched },
	})
	srv := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: sl, MaxPool: 2, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger()})
	target := raft.ServerAddress(sl.ln.Addr().String())
	heard := make(chan string, 4)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); srv.Close() })
	go func() {
		for {
			var rpc raft.RPC
			select {
			case rpc = <-srv.Consumer():
			case <-done:
				return
			}
			switch req := rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				heard <- string(req.ID)
				rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true}, nil)
			case *raft.InstallSnapshotRequest:
				data, err := io.ReadAll(rpc.Reader)
				heard <- "snapshot from " + string(req.ID) + ": " + string(data)
				rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term, Success: true}, err)
			default:
				rpc.Respond(nil, fmt.Errorf("unexpected %T", req))
			}
		}
	}()
	client := func(host string) *raft.NetworkTransport { return raftClientAs(t, certs, host) }
	// send makes tr send an AppendEntries with header h; want is the ID the
	// server hears, or "" when it must hear nothing and tr an error.
	send := func(what string, tr *raft.NetworkTransport, h raft.RPCHeader, want string) {
		t.Helper()
		var resp raft.AppendEntriesResponse
		err := tr.AppendEntries("node1", target, &raft.AppendEntriesRequest{RPCHeader: h, Term: 1}, &resp)
		var got string
		select {
		case got = <-heard: // sent before the answer
		default:
		}
		if want == "" && (err == nil || got != "") {
			t.Fatalf("%s: reached raft (heard %q, error %v)", what, got, err)
		}
		if want != "" && (err != nil || got != want) {
			t.Fatalf("%s: heard %q, error %v; want %q heard", what, got, err, want)
		}
	}

	m2 := client("127.0.0.2")
	send("a member as itself", m2, rpcHeader("127.0.0.2:7000"), "127.0.0.2:7000")
	send("a member claiming another", client("127.0.0.2"), rpcHeader("127.0.0.1:7000"), "")
	send("a member claiming another's ID", client("127.0.0.2"), raft.RPCHeader{ID: []byte("127.0.0.1:7000"), Addr: []byte("127.0.0.2:7000")}, "")
	send("a member claiming another's address", client("127.0.0.2"), raft.RPCHeader{ID: []byte("127.0.0.2:7000"), Addr: []byte("127.0.0.1:7000")}, "")
	send("a member with no header", client("127.0.0.2"), raft.RPCHeader{}, "")
	send("a stranger", client("127.0.0.9"), rpcHeader("127.0.0.9:7000"), "")
	send("a stranger claiming a member", client("127.0.0.9"), rpcHeader("127.0.0.2:7000"), "")

	// A server whose join is under way, on its connection; afterwards
	// neither that connection nor a new one reaches raft.
	joined := sl.expect("127.0.0.3:7000")
	m3 := client("127.0.0.3")
	send("a server while its join is under way", m3, rpcHeader("127.0.0.3:7000"), "127.0.0.3:7000")
	joined()
	send("its connection after the join", m3, rpcHeader("127.0.0.3:7000"), "")
	send("it anew after the join", client("127.0.0.3"), rpcHeader("127.0.0.3:7000"), "")

	// A server the other members list, when this node's configuration
	// does not (it has not heard of the change yet).
	set(members, []string{"127.0.0.9:7000"})
	send("a server another member vouches for", client("127.0.0.9"), rpcHeader("127.0.0.9:7000"), "127.0.0.9:7000")

	// A member removed: its open connection is dropped at its next RPC,
	// a new one is refused.
	set([]string{"127.0.0.1:7000"}, nil)
	send("a removed member's open connection", m2, rpcHeader("127.0.0.2:7000"), "")
	send("a removed member anew", client("127.0.0.2"), rpcHeader("127.0.0.2:7000"), "")

	// On one connection: an InstallSnapshot whose data looks like an RPC
	// claiming another member (raft gets it as data, unread by the guard),
	// an AppendEntries after it (found where it starts), then one claiming
	// another member (dropped, the connection closed).
	set([]string{"127.0.0.1:7000", "127.0.0.2:7000"}, nil)
	cert, err := tls.LoadX509KeyPair(files("127.0.0.2").cert, files("127.0.0.2").key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", string(target), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ts.raftClient.RootCAs, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var forged bytes.Buffer
	forged.WriteByte(rpcAppendEntries)
	if err := codec.NewEncoder(&forged, &codec.MsgpackHandle{}).Encode(&raft.AppendEntriesRequest{RPCHeader: rpcHeader("127.0.0.1:7000"), Term: 99}); err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	enc := codec.NewEncoder(w, &codec.MsgpackHandle{})
	rpc := func(typ uint8, req any, data []byte) {
		t.Helper()
		if err := w.WriteByte(typ); err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(req); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	dec := codec.NewDecoder(bufio.NewReader(conn), &codec.MsgpackHandle{})
	answer := func(resp any) error {
		var msg string
		if err := dec.Decode(&msg); err != nil {
			return err
		}
		if msg != "" {
			return errors.New(msg)
		}
		return dec.Decode(resp)
	}
	rpc(rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: rpcHeader("127.0.0.2:7000"), Term: 1, Size: int64(forged.Len())}, forged.Bytes())
	rpc(rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: rpcHeader("127.0.0.2:7000"), Term: 1}, nil)
	if err := answer(&raft.InstallSnapshotResponse{}); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if got, want := <-heard, "snapshot from 127.0.0.2:7000: "+forged.String(); got != want {
		t.Fatalf("heard %q, want %q", got, want)
	}
	if err := answer(&raft.AppendEntriesResponse{}); err != nil {
		t.Fatalf("append after the snapshot: %v", err)
	}
	if got := <-heard; got != "127.0.0.2:7000" {
		t.Fatalf("after the snapshot heard %q", got)
	}
	rpc(rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: rpcHeader("127.0.0.1:7000"), Term: 99}, nil)
	if err := answer(&raft.AppendEntriesResponse{}); err == nil {
		t.Fatal("an RPC claiming another member was answered")
	}
	select {
	case got := <-heard:
		t.Fatalf("raft heard %q", got)
	default:
	}
}

// loopConn is a connection that receives one message over and over.
type loopConn struct {
	net.Conn
	msg []byte
	at  int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.msg[c.at:])
		n += m
		c.at = (c.at + m) % len(c.msg)
	}
	return n, nil
}

// What the guard adds to a follower's reading of one AppendEntries as
// raft's handleCommand reads it (type byte, then the request off a 256 KiB
// bufio.Reader): one entry of 5 KiB, a batch of about 43 writes of 100-byte
// values, as set64 makes them.
//
//	go test -run '^$' -bench RPCGuard .
func BenchmarkRPCGuard(b *testing.B) {
	var msg bytes.Buffer
	msg.WriteByte(rpcAppendEntries)
	err := codec.NewEncoder(&msg, &codec.MsgpackHandle{}).Encode(&raft.AppendEntriesRequest{
		RPCHeader: rpcHeader("127.0.0.1:7000"), Term: 5, PrevLogEntry: 100, PrevLogTerm: 5, LeaderCommitIndex: 100,
		Entries: []*raft.Log{{Index: 101, Term: 5, Type: raft.LogCommand, Data: bytes.Repeat([]byte("k"), 43*120)}}})
	if err != nil {
		b.Fatal(err)
	}
	cert := &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	members := []string{"127.0.0.1:7000", "127.0.0.2:7000", "127.0.0.3:7000"}
	for _, guarded := range []bool{false, true} {
		b.Run(fmt.Sprintf("guarded=%v", guarded), func(b *testing.B) {
			var c net.Conn = &loopConn{msg: msg.Bytes()}
			if guarded {
				c = newRPCGuard(c, cert, func(cert *x509.Certificate) bool { return namesAnyHost(cert, members) }, hclog.NewNullLogger())
			}
			r := bufio.NewReaderSize(c, 256<<10)
			dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadByte(); err != nil {
					b.Fatal(err)
				}
				var req raft.AppendEntriesRequest
				if err := dec.Decode(&req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
