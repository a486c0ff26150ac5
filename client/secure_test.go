package client_test

// A cluster run as README's "Running on several hosts" says: mutual TLS
// between the nodes, HTTPS for the API, a token. Certificates are made at
// test time by cmd/certs.

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stcache/stcache/client"
)

const secureToken = "s3cret-token-for-the-client-tests"

func TestSecureCluster(t *testing.T) {
	certs := t.TempDir()
	trust := makeCerts(t, certs)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(secureToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := startCluster(t.TempDir(), clusterOpts{flags: []string{"-token-file", tokenFile}, certDir: certs, tls: trust})
	if sc != nil {
		t.Cleanup(func() {
			sc.stopAll()
			if t.Failed() {
				sc.dumpLogs(tWriter{t})
			}
		})
	}
	if err != nil {
		t.Fatalf("start the secure cluster: %v", err)
	}
	l := sc.leader(t)
	follower := sc.others(l)[0].http
	ca := filepath.Join(certs, "ca.pem")
	ctx := ctxT(t, 60*time.Second)

	t.Run("token and TLS", func(t *testing.T) {
		// Through a follower only: the https redirect is followed, with
		// the token, and the stale read on the follower needs it too.
		c := newClient(t, []string{follower}, client.WithCA(ca), client.WithTokenFile(tokenFile))
		if _, err := c.Set(ctx, "secure", "yes"); err != nil {
			t.Fatalf("set: %v", err)
		}
		if v, err := c.GetStrong(ctx, "secure"); err != nil || v != "yes" {
			t.Fatalf("strong get: %q, %v", v, err)
		}
		if err := poll(10*time.Second, func() error { _, err := c.Get(ctx, "secure"); return err }); err != nil {
			t.Fatalf("stale get on the follower: %v", err)
		}
		// A client certificate, for a proxy that would ask for one: the
		// nodes do not, and accept it.
		cc := newClient(t, []string{follower}, client.WithCA(ca), client.WithToken(secureToken),
			client.WithClientCert(filepath.Join(certs, "127.0.0.1.pem"), filepath.Join(certs, "127.0.0.1-key.pem")))
		if v, err := cc.GetStrong(ctx, "secure"); err != nil || v != "yes" {
			t.Fatalf("with a client certificate: %q, %v", v, err)
		}
	})

	t.Run("401", func(t *testing.T) {
		for name, opts := range map[string][]client.Option{
			"no token":    {client.WithCA(ca)},
			"wrong token": {client.WithCA(ca), client.WithToken("not-the-token-but-long-enough")},
		} {
			c := newClient(t, []string{follower, l.http}, opts...)
			_, err := c.Set(ctx, "stolen", "1")
			if !errors.Is(err, client.ErrUnauthorized) || errors.Is(err, client.ErrUnknownOutcome) {
				t.Fatalf("%s: set: %v, want ErrUnauthorized", name, err)
			}
			if _, err := c.Get(ctx, "secure"); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("%s: get: %v, want ErrUnauthorized", name, err)
			}
			if _, err := c.GetStrong(ctx, "secure"); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("%s: strong get: %v, want ErrUnauthorized", name, err)
			}
			if _, err := c.Delete(ctx, "secure"); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("%s: delete: %v, want ErrUnauthorized", name, err)
			}
		}
		good := newClient(t, []string{l.http}, client.WithCA(ca), client.WithToken(secureToken))
		if _, err := good.GetStrong(ctx, "stolen"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("a refused set wrote: %v", err)
		}
		if v, err := good.GetStrong(ctx, "secure"); err != nil || v != "yes" {
			t.Fatalf("a refused delete deleted: %q, %v", v, err)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		// Without the CA the handshake fails on every member alike: the
		// call ends at once, it does not wait for the context.
		c := newClient(t, []string{follower, l.http}, client.WithTLSConfig(&tls.Config{}), client.WithToken(secureToken))
		t0 := time.Now()
		_, err := c.Set(ctx, "k", "v")
		var cv *tls.CertificateVerificationError
		if !errors.As(err, &cv) || errors.Is(err, client.ErrUnknownOutcome) {
			t.Fatalf("set without the CA: %v, want a certificate error", err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Fatalf("the certificate error took %v", d)
		}
	})
}
