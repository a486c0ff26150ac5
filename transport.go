package main

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is the TCP connection layer under raft's NetworkTransport. It
// exists for two reasons raft's own TCPStreamLayer cannot serve:
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
type streamLayer struct {
	ln        net.Listener
	advertise advertisedAddr
	open      atomic.Bool
}

// advertisedAddr is a Raft address as given: a name stays a name.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// listenRaft listens on bind and advertises adv. The door starts open unless
// closed is true.
func listenRaft(bind, adv string, closed bool) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &streamLayer{ln: ln, advertise: advertisedAddr(adv)}
	s.open.Store(!closed)
	return s, nil
}

// Accept returns the next connection while the door is open; while it is
// shut, connections are closed as they arrive, before Raft reads a byte.
func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		if s.open.Load() {
			return c, nil
		}
		c.Close()
	}
}

// Open lets Raft connections in from now on.
func (s *streamLayer) Open() { s.open.Store(true) }

func (s *streamLayer) Close() error { return s.ln.Close() }

// Addr is what raft advertises: the address as given, never resolved.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial resolves the peer's name afresh at every dial.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
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
