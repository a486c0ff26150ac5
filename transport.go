package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// streamLayer is the TCP connection layer under raft's NetworkTransport. It
// exists for three reasons raft's own TCPStreamLayer cannot serve:
//
//   - It advertises the Raft address exactly as given ("localhost:7000"),
//     where raft's takes only a resolved *net.TCPAddr. The advertised string
//     is the node's server ID and what the leader sends in every
//     AppendEntries, so with a resolved IP a follower knew the leader by an
//     address that matched no ID in the configuration, and a node whose IP
//     changes under the same name (containers, DHCP) could not be found.
//     Peers are dialled by name, so a new IP is picked up at the next dial.
//   - It can hold the door shut: a node that starts with no state and asks to
//     join drops every incoming Raft connection until the leader has removed
//     any earlier incarnation of it from the configuration (see joinCluster).
//     Until then it could grant votes it has forgotten granting: hashicorp/raft
//     grants votes freely while its configuration is empty.
//   - It can speak mutual TLS (-tls-cert, -tls-key, -tls-ca): hashicorp/raft
//     decodes whatever a connection sends, so off loopback only peers that
//     prove a certificate signed by the cluster's CA may reach it, and only
//     if that certificate names a member's host; each RPC on the connection
//     must then claim a member the certificate names (tls.go, rpcGuard).
type streamLayer struct {
	ln        net.Listener
	advertise advertisedAddr
	open      atomic.Bool
	tls       *tlsSetup // nil: plain TCP, as in the tutorial
	log       hclog.Logger

	// With TLS, whose certificates are admitted: the node's hooks (nil
	// until Raft runs: nothing is admitted before), and the Raft addresses
	// of servers whose /join is under way on this node.
	peers     atomic.Pointer[raftPeers]
	joinMu    sync.Mutex
	joinsOpen map[string]int

	conns     chan net.Conn // admitted connections, for Accept
	done      chan struct{}
	closeOnce sync.Once
}

// handshakeTimeout bounds a TLS handshake, both ways: a peer that connects
// and says nothing holds a goroutine for this long at most.
const handshakeTimeout = 10 * time.Second

// advertisedAddr is a Raft address as given: a name stays a name.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// listenRaft listens on bind and advertises adv. The door starts open unless
// closed is true. With t, every connection must complete a mutual TLS
// handshake before Raft sees it.
func listenRaft(bind, adv string, closed bool, t *tlsSetup, log hclog.Logger) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &streamLayer{ln: ln, advertise: advertisedAddr(adv), tls: t, log: log,
		conns: make(chan net.Conn), done: make(chan struct{})}
	s.open.Store(!closed)
	go s.acceptLoop()
	return s, nil
}

// acceptLoop accepts connections and admits each on its own goroutine, so
// a slow or silent peer's handshake never holds up the next connection.
func (s *streamLayer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Error("raft listener failed; no more incoming raft connections", "error", err)
			return
		}
		go s.admit(c)
	}
}

// admit passes c to Raft once it has proven itself, and only while the door
// is open. With TLS: a completed handshake in which it presented a
// certificate signed by our CA (a plaintext or wrongly signed peer is closed
// before Raft reads a byte), that certificate naming the host of a member
// (admits); and then each RPC it sends is checked before Raft reads it
// (rpcGuard).
func (s *streamLayer) admit(c net.Conn) {
	if s.tls != nil {
		tc := tls.Server(c, s.tls.raftServer)
		_ = c.SetDeadline(time.Now().Add(handshakeTimeout)) // a closed conn fails the handshake below
		if err := tc.Handshake(); err != nil {
			s.log.Warn("refused a raft connection: TLS handshake failed", "from", c.RemoteAddr().String(), "error", err)
			c.Close()
			return
		}
		_ = c.SetDeadline(time.Time{})
		c = tc
	}
	if !s.open.Load() {
		c.Close()
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		cert := tc.ConnectionState().PeerCertificates[0] // RequireAndVerifyClientCert: there is one
		if !s.admits(cert) {
			s.log.Warn("refused a raft connection: its certificate names no member's host",
				"from", c.RemoteAddr().String(), "names", certNames(cert))
			c.Close()
			return
		}
		c = newRPCGuard(tc, cert, s.admits, s.log)
	}
	select {
	case s.conns <- c:
	case <-s.done:
		c.Close()
	}
}

// Accept returns the next admitted connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// raftPeers is how the stream layer learns, with TLS, whose certificates to
// admit. The node gives it once Raft runs (setPeers).
type raftPeers struct {
	// members: the Raft addresses of this node's latest configuration.
	// Called for every connection and every RPC, so it must be cheap.
	members func() []string
	// vouched: the Raft addresses the other members list, asked only when
	// members and the joins under way name no host of a certificate: a node
	// that has not yet heard of a configuration change (it was cut off, or
	// it is new and waits for its first entries) must still admit the
	// leader that brings it. It may take a second; it rate-limits itself.
	vouched func() []string
}

func (s *streamLayer) setPeers(p raftPeers) { s.peers.Store(&p) }

// expect admits addr's host while the returned func is not yet called: the
// leader calls it for the length of a /join (the joining server is in no
// configuration yet).
func (s *streamLayer) expect(addr string) (done func()) {
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if s.joinsOpen == nil {
		s.joinsOpen = map[string]int{}
	}
	s.joinsOpen[addr]++
	return func() {
		s.joinMu.Lock()
		defer s.joinMu.Unlock()
		if s.joinsOpen[addr]--; s.joinsOpen[addr] <= 0 {
			delete(s.joinsOpen, addr)
		}
	}
}

// admits reports whether cert names the host of a current member's Raft
// address, of a server whose join is under way here, or, failing those, of
// a server the other members list.
func (s *streamLayer) admits(cert *x509.Certificate) bool {
	p := s.peers.Load()
	if p == nil {
		return false
	}
	if namesAnyHost(cert, p.members()) {
		return true
	}
	s.joinMu.Lock()
	for addr := range s.joinsOpen {
		if namesHost(cert, addr) {
			s.joinMu.Unlock()
			return true
		}
	}
	s.joinMu.Unlock()
	return p.vouched != nil && namesAnyHost(cert, p.vouched())
}

// Open lets Raft connections in from now on.
func (s *streamLayer) Open() { s.open.Store(true) }

func (s *streamLayer) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.ln.Close()
	})
	return err
}

// Addr is what raft advertises: the address as given, never resolved.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial resolves the peer's name afresh at every dial and, with TLS,
// completes the handshake (verifying the peer against our CA, under the name
// dialled) before Raft writes to it.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls == nil {
		return d.Dial("tcp", string(address))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	td := &tls.Dialer{NetDialer: d, Config: s.tls.clientFor(string(address))}
	return td.DialContext(ctx, "tcp", string(address))
}

// probe checks that a Raft peer answers at address (with TLS: that it holds
// a certificate signed by our CA for that name), before the leader lets it
// count towards the quorum.
func (s *streamLayer) probe(address string) error {
	c, err := s.Dial(raft.ServerAddress(address), 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// sameEndpoint reports whether two host:port spellings reach the same
// listener: equal strings, or the same port on hosts that resolve to a
// common IP ("localhost:7000" and "127.0.0.1:7000"). A name that does not
// resolve is only equal to itself.
func sameEndpoint(a, b string) bool {
	if a == b {
		return true
	}
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	ipsA, ipsB := resolveHost(ha), resolveHost(hb)
	for _, x := range ipsA {
		for _, y := range ipsB {
			if x.Equal(y) {
				return true
			}
		}
	}
	return false
}

// resolveHost returns host's IPs (host itself if it is one), or none.
func resolveHost(host string) []net.IP {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	// Bounded: a join must not hang on a DNS server that does not answer.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips
}
