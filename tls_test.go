package main

// Off loopback: the token, mutual TLS on the Raft port and HTTPS, against
// real processes, with certificates made at test time by cmd/certs.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
// The read-only views stay open.
func TestTokenRequired(t *testing.T) {
	certs := makeCerts(t, t.TempDir())
	setup, _ := secureSetup(t, certs)
	c := startCluster(t, 3, setup)
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
	for _, path := range []string{"/status", "/ui", "/ui/app.js"} {
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
