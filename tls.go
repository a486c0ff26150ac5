package main

// Running off loopback: mutual TLS for Raft, HTTPS for the API, and the
// shared token that guards the API's data and membership endpoints.

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
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

// namesHost reports whether cert is valid for the host of addr (host:port),
// by the rules a dialler checks it with (IP or DNS name SANs).
func namesHost(cert *x509.Certificate, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && cert.VerifyHostname(host) == nil
}

func namesAnyHost(cert *x509.Certificate, addrs []string) bool {
	for _, a := range addrs {
		if namesHost(cert, a) {
			return true
		}
	}
	return false
}

// certNames lists the names a certificate is valid for, for logs.
func certNames(cert *x509.Certificate) string {
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "none (CN " + cert.Subject.CommonName + ")"
	}
	return strings.Join(names, ",")
}

// hashicorp/raft v1.7.3's RPC types on the wire (net_transport.go): a type
// byte, then the request in msgpack; an InstallSnapshot's request is
// followed by Size bytes of snapshot data.
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

// rpcHead decodes the header of any request but InstallSnapshot exactly as
// raft decodes it: every request type embeds raft.RPCHeader as its first
// field, and the codec inlines it, so in map form the keys and in array
// form the first three positions mean the same in both; whatever else the
// request holds is skipped here.
type rpcHead struct{ raft.RPCHeader }

// rpcCodec is raft's: a default MsgpackHandle.
var rpcCodec = &codec.MsgpackHandle{}

// rpcGuard is an admitted Raft connection as hashicorp/raft reads it. The
// sender's identity is in each RPC's header (server ID and address), inside
// the msgpack that raft decodes, and raft believes it: it decides who
// leads, whom to vote for, whose term to follow. So the guard reads each
// RPC ahead of raft and hands raft its bytes only once the header's ID and
// address both name a host the peer's certificate names, and that
// certificate still names a member's host (admits: a member removed since
// the connection was admitted is cut off at its next RPC). Anything else
// closes the connection: raft reads a clean end of stream between two RPCs.
//
// The header is decoded with raft's own codec and handle from the very
// bytes raft then decodes, so both read the same claim; the cost is a
// second pass over each request (skipping its entries) and one copy.
type rpcGuard struct {
	net.Conn                   // the TLS connection: raft's answers go straight to it
	cert     *x509.Certificate // the peer's, verified against our CA
	admits   func(*x509.Certificate) bool
	log      hclog.Logger
	in       *bufio.Reader // what the peer sent, unchecked
	dec      *codec.Decoder
	buf      []byte // the RPC being checked, as read
	out      []byte // checked bytes raft has not read yet
	raw      int64  // snapshot data still to pass through to raft
}

func newRPCGuard(c net.Conn, cert *x509.Certificate, admits func(*x509.Certificate) bool, log hclog.Logger) *rpcGuard {
	g := &rpcGuard{Conn: c, cert: cert, admits: admits, log: log, in: bufio.NewReaderSize(c, 32<<10)}
	g.dec = codec.NewDecoder(guardReader{g}, rpcCodec)
	return g
}

// Read gives raft the checked RPC, then any snapshot data that follows it,
// and checks the next RPC only when raft asks for more.
func (g *rpcGuard) Read(p []byte) (int, error) {
	if len(g.out) == 0 && g.raw == 0 {
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	if len(g.out) > 0 {
		n := copy(p, g.out)
		g.out = g.out[n:]
		return n, nil
	}
	if int64(len(p)) > g.raw {
		p = p[:g.raw]
	}
	n, err := g.in.Read(p)
	g.raw -= int64(n)
	return n, err
}

// next reads one whole RPC request off the connection and checks it.
func (g *rpcGuard) next() error {
	if cap(g.buf) > 1<<20 {
		g.buf = nil // one large snapshot request or batch: do not keep its buffer
	}
	g.buf = g.buf[:0]
	t, err := g.in.ReadByte()
	if err != nil {
		return err
	}
	g.buf = append(g.buf, t)
	var h raft.RPCHeader
	var size int64
	switch t {
	case rpcInstallSnapshot:
		// Rare, and its Size is deep in the struct: decode it whole.
		var req raft.InstallSnapshotRequest
		err = g.dec.Decode(&req)
		h, size = req.RPCHeader, max(req.Size, 0) // raft reads no data for a negative Size
	case rpcAppendEntries, rpcRequestVote, rpcTimeoutNow, rpcRequestPreVote:
		var req rpcHead
		err = g.dec.Decode(&req)
		h = req.RPCHeader
	default:
		return fmt.Errorf("unknown rpc type %d", t) // raft refuses it as well
	}
	if err != nil {
		return fmt.Errorf("decode rpc header: %w", err)
	}
	if why := g.refuse(h); why != "" {
		g.log.Warn("dropped a raft RPC and its connection: "+why, "from", g.RemoteAddr().String(),
			"names", certNames(g.cert), "id", string(h.ID), "addr", string(h.Addr))
		g.Conn.Close()
		return io.EOF // between two RPCs: raft ends the connection without an error of its own
	}
	g.out, g.raw = g.buf, size
	return nil
}

// refuse says why an RPC with header h may not reach raft, or "".
func (g *rpcGuard) refuse(h raft.RPCHeader) string {
	if !namesHost(g.cert, string(h.ID)) || !namesHost(g.cert, string(h.Addr)) {
		return "its header claims a server its certificate does not name"
	}
	if !g.admits(g.cert) {
		return "its certificate no longer names a member's host"
	}
	return ""
}

// guardReader is what the guard's decoder reads: the connection, each byte
// recorded for raft. A ByteScanner, so the codec reads no byte past the
// request (as it does from raft's bufio.Reader).
type guardReader struct{ g *rpcGuard }

func (r guardReader) Read(p []byte) (int, error) {
	n, err := r.g.in.Read(p)
	r.g.buf = append(r.g.buf, p[:n]...)
	return n, err
}

func (r guardReader) ReadByte() (byte, error) {
	b, err := r.g.in.ReadByte()
	if err == nil {
		r.g.buf = append(r.g.buf, b)
	}
	return b, err
}

func (r guardReader) UnreadByte() error {
	if err := r.g.in.UnreadByte(); err != nil {
		return err
	}
	r.g.buf = r.g.buf[:len(r.g.buf)-1]
	return nil
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
