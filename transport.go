package main

import (
	"context"
	"crypto/tls"
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
//     prove a certificate signed by the cluster's CA may reach it.
type streamLayer struct {
	ln        net.Listener
	advertise advertisedAddr
	open      atomic.Bool
	tls       *tlsSetup // nil: plain TCP, as in the tutorial
	log       hclog.Logger

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

// admit passes c to Raft once it has proven itself: with TLS, a completed
// handshake in which it presented a certificate signed by our CA (a
// plaintext or wrongly signed peer is closed before Raft reads a byte), and
// only while the door is open.
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
