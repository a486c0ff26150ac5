package main

// Running off loopback: mutual TLS for Raft, HTTPS for the API, and the
// shared token that guards the API's data and membership endpoints.

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// tlsFiles are the three PEM files of -tls-cert, -tls-key and -tls-ca.
type tlsFiles struct{ cert, key, ca string }

// tlsSetup is what one node needs to speak TLS: to its Raft peers (both
// ways, each side verifying the other against the CA) and to HTTP clients.
type tlsSetup struct {
	raftServer *tls.Config // Raft listener: requires a client certificate signed by the CA
	raftClient *tls.Config // dialling Raft peers: presents ours, verifies theirs
	httpServer *tls.Config // the API: server certificate only, clients need none
	httpClient *tls.Config // -join, and the leader proving a joining node: trusts the CA
}

// loadTLS reads the node's certificate, key and CA. Every failure names the
// file, so a node refuses to start with one clear line.
func loadTLS(f tlsFiles) (*tlsSetup, error) {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("load -tls-cert %s with -tls-key %s: %w", f.cert, f.key, err)
	}
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("read -tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", f.ca)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	s := &tlsSetup{
		raftServer: base.Clone(),
		raftClient: base.Clone(),
		httpServer: base.Clone(),
		httpClient: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
	}
	s.raftServer.ClientAuth = tls.RequireAndVerifyClientCert
	s.raftServer.ClientCAs = pool
	s.raftClient.RootCAs = pool
	return s, nil
}

// clientFor returns the Raft client config for dialling addr: the peer's
// certificate must name the host we dial (an IP or a DNS name SAN).
func (s *tlsSetup) clientFor(addr string) *tls.Config {
	c := s.raftClient.Clone()
	host, _, err := net.SplitHostPort(addr)
	if err == nil {
		c.ServerName = host
	}
	return c
}

// minTokenBytes: a shorter secret is guessable; refuse to start with it.
const minTokenBytes = 16

// readToken reads -token-file: the secret, whitespace trimmed.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read -token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenBytes {
		return "", fmt.Errorf("-token-file %s: the token must be at least %d bytes (it has %d)", path, minTokenBytes, len(tok))
	}
	return tok, nil
}

// requireToken wraps a guarded endpoint: without "Authorization: Bearer
// <token>" (scheme in any case) the request gets 401 before anything else
// is looked at, so a 401 comes before any 400, 405 or redirect. The
// comparison is of SHA-256 digests in constant time: neither the token's
// bytes nor its length leak through timing.
func requireToken(token string, h http.HandlerFunc) http.HandlerFunc {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			text(w, http.StatusUnauthorized, "unauthorized\n")
			return
		}
		h(w, r)
	}
}

// isLoopbackBind reports whether a listen address stays on this machine.
func isLoopbackBind(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errTLSFlags: the three TLS flags go together.
var errTLSFlags = errors.New("-tls-cert, -tls-key and -tls-ca must be given together")
