package main

// Network partitions without root: a TCP proxy in front of each node's Raft
// port (the node advertises the proxy with -raft-advertise), which the fault
// test cuts and heals.
//
// Why this cuts both directions. hashicorp/raft's TCP transport dials every
// peer at its advertised address, and a connection carries RPCs one way: the
// dialer's requests and the peer's answers. Every node advertises its proxy,
// so every connection between two nodes passes through exactly one proxy, the
// one of the node being dialed. That proxy knows the callee (its own node)
// but TCP does not tell it the caller: every node dials from 127.0.0.1 with
// an ephemeral port, and the transport cannot be told to use another source
// address. So on accept the proxy asks the kernel: the calling socket is the
// line of /proc/net/tcp whose local end is the accepted connection's remote
// end; its inode shows up as socket:[inode] among the fds of exactly one
// process, and the test knows every node's PID. With both ends known, a
// connection between A and B passes only while the partition puts A and B
// on the same side, and that covers both directions: A's RPCs to B cross B's
// proxy, B's RPCs to A cross A's proxy. A connection whose caller cannot be
// found (its process just died, say) only passes while nothing is cut.
//
// Two ways to cut: reset closes every crossing connection and refuses new
// ones, so peers see errors at once; stall keeps them open but holds every
// byte (and every new connection) until the heal, like a network that drops
// packets that TCP then retransmits: peers see timeouts, and old RPCs arrive
// late after the heal.
//
// Linux only (it reads /proc), IPv4 loopback only, as the tests use.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type cutMode int

const (
	cutReset cutMode = iota
	cutStall
)

func (m cutMode) String() string {
	if m == cutStall {
		return "stall"
	}
	return "reset"
}

// raftNet is the network between the nodes of one test cluster.
type raftNet struct {
	mu      sync.Mutex
	pids    []func() int // each node's current PID, 0 while it is down
	side    []int        // partition side of each node; nil when healed
	mode    cutMode
	changed chan struct{} // closed and replaced at every change
	proxies []*raftProxy
	unknown int // accepted connections whose caller was not found
	// oneway holds the bytes flowing from node [0] to node [1] (requests
	// on connections [0] dialled, answers on those [1] dialled) until the
	// heal: one node's messages are lost to the other, not the reverse.
	oneway map[[2]int]bool
	// slow delays every chunk between node and any other by a random
	// 20–200 ms (-1: no node is slow).
	slow int
}

func newRaftNet(n int) *raftNet {
	return &raftNet{pids: make([]func() int, n), changed: make(chan struct{}), slow: -1}
}

// attach tells how to find node i's PID, so its connections can be told
// apart.
func (nw *raftNet) attach(i int, pid func() int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.pids[i] = pid
}

// allowedLocked says whether bytes may flow between nodes from and to
// (from < 0: a caller we could not identify).
func (nw *raftNet) allowedLocked(from, to int) bool {
	if nw.side == nil {
		return true
	}
	return from >= 0 && nw.side[from] == nw.side[to]
}

// partition puts node i on side sides[i]: nodes talk only within a side.
func (nw *raftNet) partition(sides []int, mode cutMode) {
	nw.mu.Lock()
	nw.side = append([]int(nil), sides...)
	nw.mode = mode
	close(nw.changed)
	nw.changed = make(chan struct{})
	var doomed []*proxyConn
	if mode == cutReset {
		for _, px := range nw.proxies {
			px.mu.Lock()
			for pc := range px.conns {
				if !nw.allowedLocked(pc.from, pc.to) {
					doomed = append(doomed, pc)
				}
			}
			px.mu.Unlock()
		}
	}
	nw.mu.Unlock()
	for _, pc := range doomed {
		pc.close()
	}
}

// isolate cuts node i off from every other node.
func (nw *raftNet) isolate(i int, mode cutMode) {
	sides := make([]int, len(nw.pids))
	sides[i] = 1
	nw.partition(sides, mode)
}

func (nw *raftNet) heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.side, nw.oneway, nw.slow = nil, nil, -1
	close(nw.changed)
	nw.changed = make(chan struct{})
}

// cutOneWay holds every byte sent from pair[0] to pair[1], for each pair,
// until the heal; bytes the other way flow.
func (nw *raftNet) cutOneWay(pairs ...[2]int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.oneway = map[[2]int]bool{}
	for _, p := range pairs {
		nw.oneway[p] = true
	}
	close(nw.changed)
	nw.changed = make(chan struct{})
}

// slowDown delays node i's traffic, both ways, by 20–200 ms a chunk.
func (nw *raftNet) slowDown(i int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.slow = i
}

// flowLocked says whether bytes from src to dst may pass now (beyond the
// connection being allowed at all).
func (nw *raftNet) flowLocked(src, dst int) bool {
	return !nw.oneway[[2]int{src, dst}]
}

// wait blocks until bytes may flow on pc; false if pc must close instead.
func (nw *raftNet) wait(pc *proxyConn) bool {
	for {
		nw.mu.Lock()
		ok, mode, changed := nw.allowedLocked(pc.from, pc.to), nw.mode, nw.changed
		nw.mu.Unlock()
		if ok {
			return true
		}
		if mode == cutReset {
			return false
		}
		select {
		case <-changed:
		case <-pc.done:
			return false
		}
	}
}

// caller returns the node whose process opened the connection c accepted,
// or -1.
func (nw *raftNet) caller(c net.Conn) int {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if ok1 && ok2 {
		// The caller's socket: its local end is our remote end.
		if inode, err := socketInode(remote, local); err == nil {
			nw.mu.Lock()
			pids := append([]func() int(nil), nw.pids...)
			nw.mu.Unlock()
			for i, pid := range pids {
				if pid != nil && ownsSocket(pid(), inode) {
					return i
				}
			}
		}
	}
	nw.mu.Lock()
	nw.unknown++
	nw.mu.Unlock()
	return -1
}

// listen starts the proxy for node i, forwarding to its Raft listener.
func (nw *raftNet) listen(i int, target string) (*raftProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	px := &raftProxy{nw: nw, node: i, target: target, ln: ln, conns: map[*proxyConn]struct{}{}}
	nw.mu.Lock()
	nw.proxies = append(nw.proxies, px)
	nw.mu.Unlock()
	px.wg.Add(1)
	go px.serve()
	return px, nil
}

// close stops every proxy and waits for their goroutines.
func (nw *raftNet) close() {
	nw.heal()
	nw.mu.Lock()
	proxies := append([]*raftProxy(nil), nw.proxies...)
	nw.mu.Unlock()
	for _, px := range proxies {
		px.close()
	}
}

// raftProxy forwards connections to one node's Raft listener.
type raftProxy struct {
	nw     *raftNet
	node   int
	target string
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	closed bool
}

func (px *raftProxy) addr() string { return px.ln.Addr().String() }

func (px *raftProxy) serve() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return // closed
		}
		pc := &proxyConn{from: px.nw.caller(c), to: px.node, client: c, done: make(chan struct{})}
		px.mu.Lock()
		if px.closed {
			px.mu.Unlock()
			c.Close()
			return
		}
		px.conns[pc] = struct{}{}
		px.wg.Add(1)
		px.mu.Unlock()
		go px.handle(pc)
	}
}

func (px *raftProxy) handle(pc *proxyConn) {
	defer px.wg.Done()
	defer func() {
		pc.close()
		px.mu.Lock()
		delete(px.conns, pc)
		px.mu.Unlock()
	}()
	// A stalled new connection waits here, as if its SYN were lost.
	if !px.nw.wait(pc) {
		return
	}
	server, err := net.DialTimeout("tcp", px.target, 5*time.Second)
	if err != nil {
		return // the node is down: the caller sees its connection close
	}
	if !pc.setServer(server) {
		return
	}
	done := make(chan struct{})
	go func() {
		pc.pipe(px.nw, server, pc.client, pc.from, pc.to) // the caller's requests
		close(done)
	}()
	pc.pipe(px.nw, pc.client, server, pc.to, pc.from) // the callee's answers
	<-done
}

func (px *raftProxy) close() {
	px.mu.Lock()
	px.closed = true
	conns := make([]*proxyConn, 0, len(px.conns))
	for pc := range px.conns {
		conns = append(conns, pc)
	}
	px.mu.Unlock()
	px.ln.Close()
	for _, pc := range conns {
		pc.close()
	}
	px.wg.Wait()
}

// proxyConn is one forwarded connection: from the calling node to the node
// behind the proxy.
type proxyConn struct {
	from, to int
	client   net.Conn
	done     chan struct{}
	mu       sync.Mutex
	server   net.Conn
	closed   bool
}

func (pc *proxyConn) setServer(s net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		s.Close()
		return false
	}
	pc.server = s
	return true
}

func (pc *proxyConn) close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	pc.closed = true
	close(pc.done)
	pc.client.Close()
	if pc.server != nil {
		pc.server.Close()
	}
}

// pipe copies src to dst, holding each chunk while the link is stalled or
// this direction is cut one way, delaying it while either end is slow, and
// closes the whole connection when either side ends or the link is reset.
// fromNode and toNode say which way the bytes go.
func (pc *proxyConn) pipe(nw *raftNet, dst, src net.Conn, fromNode, toNode int) {
	defer pc.close()
	buf := make([]byte, 32<<10)
	rng := rand.New(rand.NewPCG(uint64(fromNode+1), uint64(time.Now().UnixNano())))
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !nw.wait(pc) || !nw.waitFlow(pc, fromNode, toNode) {
				return
			}
			nw.mu.Lock()
			slow := nw.slow >= 0 && (nw.slow == fromNode || nw.slow == toNode)
			nw.mu.Unlock()
			if slow {
				time.Sleep(20*time.Millisecond + time.Duration(rng.Int64N(int64(180*time.Millisecond))))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitFlow holds a chunk while its direction is cut one way; false if the
// connection must close instead.
func (nw *raftNet) waitFlow(pc *proxyConn, src, dst int) bool {
	for {
		nw.mu.Lock()
		ok, changed := src < 0 || dst < 0 || nw.flowLocked(src, dst), nw.changed
		nw.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-pc.done:
			return false
		}
	}
}

// pid is the process's PID while it runs, else 0.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	select {
	case <-p.exited:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// procTCPAddr formats an IPv4 address as /proc/net/tcp does: the address as
// a native-endian 32-bit hex number, then the port in hex.
func procTCPAddr(a *net.TCPAddr) (string, error) {
	ip4 := a.IP.To4()
	if ip4 == nil {
		return "", fmt.Errorf("%v is not IPv4", a)
	}
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip4), a.Port), nil
}

// socketInode finds the inode of the TCP socket with the given local and
// remote ends.
func socketInode(local, remote *net.TCPAddr) (string, error) {
	l, err := procTCPAddr(local)
	if err != nil {
		return "", err
	}
	r, err := procTCPAddr(remote)
	if err != nil {
		return "", err
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return findInode(f, l, r)
}

// findInode scans a /proc/net/tcp table for the socket local -> remote.
func findInode(table io.Reader, local, remote string) (string, error) {
	sc := bufio.NewScanner(table)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		f := strings.Fields(sc.Text())
		if len(f) >= 10 && f[1] == local && f[2] == remote && f[9] != "0" {
			return f[9], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no socket %s -> %s", local, remote)
}

// ownsSocket says whether process pid has socket inode open.
func ownsSocket(pid int, inode string) bool {
	if pid <= 0 {
		return false
	}
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := "socket:[" + inode + "]"
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == want {
			return true
		}
	}
	return false
}

// TestRaftProxy checks the proxy on its own: it names the calling process,
// and both kinds of cut stop traffic until the heal. This test process plays
// node 0 (we know our own PID) and an echo server plays node 1.
func TestRaftProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c) // ends when either side closes
			}()
		}
	}()

	nw := newRaftNet(2)
	defer nw.close()
	px, err := nw.listen(1, echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", px.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// roundTrip sends a line and reads it back within d; "" if none came.
	roundTrip := func(c net.Conn, msg string, d time.Duration) string {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			return ""
		}
		_ = c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return ""
		}
		return string(buf)
	}
	callerOf := func() int {
		// The proxy's view of the newest connection's caller.
		px.mu.Lock()
		defer px.mu.Unlock()
		for pc := range px.conns {
			return pc.from
		}
		return -2
	}

	// Without a PID for node 0 the caller is unknown.
	c := dial()
	if got := roundTrip(c, "hi", 5*time.Second); got != "hi" {
		t.Fatalf("through the healed proxy: %q", got)
	}
	if got := callerOf(); got != -1 {
		t.Fatalf("caller of an unknown process = %d, want -1", got)
	}
	c.Close()
	waitFor(t, 5*time.Second, "the proxy to drop the closed connection", func() error {
		if got := callerOf(); got != -2 {
			return fmt.Errorf("still has a connection from %d", got)
		}
		return nil
	})

	// With our PID known, the proxy names us.
	nw.attach(0, os.Getpid)
	c = dial()
	if got := roundTrip(c, "hi", 5*time.Second); got != "hi" {
		t.Fatalf("through the healed proxy: %q", got)
	}
	if got := callerOf(); got != 0 {
		t.Fatalf("caller = %d, want node 0 (this process)", got)
	}

	// Reset: the open connection dies, a new one is closed at once.
	nw.isolate(0, cutReset)
	if got := roundTrip(c, "x", 5*time.Second); got != "" {
		t.Fatalf("reset cut let %q through", got)
	}
	if got := roundTrip(dial(), "x", 5*time.Second); got != "" {
		t.Fatalf("reset cut let a new connection through: %q", got)
	}
	nw.heal()
	c = dial()
	if got := roundTrip(c, "back", 5*time.Second); got != "back" {
		t.Fatalf("after heal: %q", got)
	}

	// Stall: nothing passes, but nothing is lost either: the bytes arrive
	// after the heal. The short read window is how long we watch for a leak.
	c2 := dial()
	if got := roundTrip(c2, "ab", 5*time.Second); got != "ab" {
		t.Fatalf("second connection: %q", got)
	}
	nw.isolate(1, cutStall) // cutting either end cuts the link
	if got := roundTrip(c, "held", 300*time.Millisecond); got != "" {
		t.Fatalf("stall let %q through", got)
	}
	c3 := dial()
	if got := roundTrip(c3, "new", 300*time.Millisecond); got != "" {
		t.Fatalf("stall let a new connection through: %q", got)
	}
	nw.heal()
	for _, x := range []struct {
		c    net.Conn
		want string
	}{{c, "held"}, {c3, "new"}} {
		_ = x.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, len(x.want))
		if _, err := io.ReadFull(x.c, buf); err != nil || string(buf) != x.want {
			t.Fatalf("after heal, held bytes: %q, %v; want %q", buf, err, x.want)
		}
	}

	// The kernel-table parser, on a made-up line.
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F40 0100007F:A2B3 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n"
	if got, err := findInode(strings.NewReader(table), "0100007F:1F40", "0100007F:A2B3"); err != nil || got != "12345" {
		t.Fatalf("findInode = %q, %v", got, err)
	}
	// On a little-endian host (what the kernel's own table shows for
	// 127.0.0.1:8000 there).
	if a, _ := procTCPAddr(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}); binary.NativeEndian.Uint32([]byte{127, 0, 0, 1}) == 0x0100007F && a != "0100007F:1F40" {
		t.Fatalf("procTCPAddr = %q", a)
	}
}

// TestRaftProxyIsolatesLeader shows on a real cluster that a cut isolates a
// node both ways, in both modes: with the leader cut off, the others elect a
// new leader (its heartbeats no longer arrive), and the old leader never
// hears of the new one or of a write it commits (nothing reaches it) until
// the heal.
func TestRaftProxyIsolatesLeader(t *testing.T) {
	beside(t)
	jc := startJepsenCluster(t, 3, false)
	for _, mode := range []cutMode{cutReset, cutStall} {
		old := jc.leaderIndex()
		if old < 0 {
			t.Fatal("no leader")
		}
		oldP := jc.nodes[old]
		jc.net.isolate(old, mode)
		nl := waitLeader(t, 30*time.Second, jc.nodes, oldP)
		key := "cut-" + mode.String()
		waitFor(t, 30*time.Second, "a write on the new leader", func() error {
			r, err := call(nl.http, "/set?key="+key+"&value=v")
			if err != nil || r.code != 200 {
				return fmt.Errorf("%d %q %v", r.code, r.body, err)
			}
			return nil
		})
		// Watch the cut-off node for a while: a heartbeat, an append or a
		// vote from the others would show within a few hundred ms.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			s, err := oldP.status()
			if err != nil {
				t.Fatal(err)
			}
			if s.Leader == nl.raftAdv {
				t.Fatalf("%s (%s, cut) learned of the new leader %s", oldP.name, mode, nl.name)
			}
			if r, _ := call(oldP.http, "/get?key="+key); r.code != 404 {
				t.Fatalf("%s (%s, cut) got the write: %d %q", oldP.name, mode, r.code, r.body)
			}
			time.Sleep(100 * time.Millisecond) // the sampling rate of the watch, not a wait for anything
		}
		jc.net.heal()
		waitValue(t, oldP, key, "v")
		jc.waitConverged(time.Minute)
	}
}
