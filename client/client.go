package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client talks to one stcache cluster. It is safe for concurrent use by
// many goroutines, and meant to be made once and shared: it holds one pool
// of keep-alive connections to the members.
type Client struct {
	hc     *http.Client
	tr     *http.Transport
	scheme string   // "http://" or "https://"
	auth   []string // the Authorization header's value (nil = no token), shared by every request
	set    settings

	mu sync.Mutex
	// seeds are the addresses given to New, always trusted; members are
	// the seeds and then the HTTP addresses the members' /status lists
	// (servers[].http), the only addresses the client sends requests to.
	seeds   []string
	members []string
	known   map[string]bool
	leader  string // the member that last took a write or named itself leader; "" = unknown
	cur     int    // index in members of the one stale reads go to
}

var formType = []string{"application/x-www-form-urlencoded"}

// maxAnswer bounds what the client reads of an answer: a value of at most
// 1 MiB and its newline, with room to spare.
const maxAnswer = 2 << 20

// New returns a client for the cluster whose members answer on addrs
// (HTTP addresses, host:port, as given to the nodes' -http or
// -http-advertise; any of the members will do, all of them is best). It
// makes no request: the first call finds the leader.
//
// Stale reads go to the first address that answers, and stay there until
// it fails; shuffle addrs to spread readers over the members.
func New(addrs []string, opts ...Option) (*Client, error) {
	s := defaults()
	for _, o := range opts {
		if err := o(&s); err != nil {
			return nil, fmt.Errorf("stcache client: %w", err)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("stcache client: no member addresses")
	}
	known := map[string]bool{}
	var seeds []string
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return nil, fmt.Errorf("stcache client: %w", err)
		}
		if !known[a] {
			known[a] = true
			seeds = append(seeds, a)
		}
	}
	tlsCfg, err := s.buildTLS()
	if err != nil {
		return nil, fmt.Errorf("stcache client: %w", err)
	}
	dialer := &net.Dialer{Timeout: s.dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// Straight to the members: a proxy would see the token.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: s.dialTimeout + time.Second,
		MaxIdleConnsPerHost: s.maxIdlePerHost,
		// Under the daemon's 2-minute IdleTimeout, so the pool drops a
		// connection before the server does: a write sent on a connection
		// the server has just closed would end as an unknown outcome.
		IdleConnTimeout:    60 * time.Second,
		DisableCompression: true,
	}
	c := &Client{
		tr: tr,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			// Redirects are followed by the client itself, to members only.
			return http.ErrUseLastResponse
		}},
		scheme:  "http://",
		set:     s,
		seeds:   seeds,
		members: slices.Clone(seeds),
		known:   known,
	}
	if tlsCfg != nil {
		c.scheme = "https://"
	}
	if s.token != "" {
		c.auth = []string{"Bearer " + s.token}
	}
	return c, nil
}

// checkAddr accepts host:port, the form every member's address has in
// /status and X-Raft-Leader.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || port == "" || strings.ContainsAny(a, "/?#@ ") {
		return fmt.Errorf("address %q: want host:port (no scheme: use WithCA for HTTPS)", a)
	}
	return nil
}

// Close closes the idle connections of the pool. Calls made after Close
// still work (they open new connections).
func (c *Client) Close() {
	c.tr.CloseIdleConnections()
}

// Members returns the addresses the client knows: those given to New, then
// the members' HTTP addresses it learned from /status.
func (c *Client) Members() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

// ---- the calls ----

// Get returns key's value from a member's own map (consistency=stale): any
// member answers, the leader is not needed, and the value may be behind
// the latest writes. A member that does not answer within the read timeout
// (or refuses the connection) is left for the next, so a dead or frozen
// member costs at most one timeout. An absent or expired key is
// ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) (string, error) {
	a, err := c.anyCall(ctx, "get", "/get?key="+url.QueryEscape(key), true)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(a.body, "\n"), nil
}

// GetStrong returns key's value with a linearizable read
// (consistency=strong): served by the leader once it has confirmed with a
// quorum that it still leads, so it reflects every write acknowledged
// before the call. It follows the leader as writes do, and waits for one
// while there is none, until ctx ends (ErrNoLeader).
func (c *Client) GetStrong(ctx context.Context, key string) (string, error) {
	a, _, err := c.leaderCall(ctx, leaderOp{name: "strong get", method: http.MethodGet,
		path: "/get?key=" + url.QueryEscape(key) + "&consistency=strong", read: true})
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(a.body, "\n"), nil
}

// Set writes key=value on the leader and returns the index of the Raft log
// entry that carried it (X-Raft-Index), once a quorum has it on disk and
// the leader has applied it. A set clears any TTL the key had.
//
// The write goes in a POST body (values up to 1 MiB). The client finds the
// leader, follows its redirects (to members only), and while there is no
// leader waits and tries again until ctx ends. It never sends a write
// twice: if the write reached a member but its answer was lost, the error
// is ErrUnknownOutcome. Any other error means nothing was written.
func (c *Client) Set(ctx context.Context, key, value string) (uint64, error) {
	return c.write(ctx, "set", "/set", "key="+url.QueryEscape(key)+"&value="+url.QueryEscape(value))
}

// SetTTL is Set with an expiry: the key reads as absent once ttl (at least
// one second) has passed on the leader's clock; the deadline is recorded
// in the log entry, so every member agrees on it.
func (c *Client) SetTTL(ctx context.Context, key, value string, ttl time.Duration) (uint64, error) {
	return c.write(ctx, "set", "/set", "key="+url.QueryEscape(key)+"&value="+url.QueryEscape(value)+"&ttl="+url.QueryEscape(ttl.String()))
}

// Delete removes key (an absent key too) and returns the index of the log
// entry that carried it, with the guarantees of Set.
func (c *Client) Delete(ctx context.Context, key string) (uint64, error) {
	return c.write(ctx, "delete", "/delete", "key="+url.QueryEscape(key))
}

// Join asks the leader to add the node whose Raft address is raftAddr as a
// voter, recording httpAddr (may be "") as its HTTP address, which the
// client then counts as a member. It returns the index of the entry that
// changed the configuration, or 0 if the node was a voter already. A Join
// is idempotent: after ErrUnknownOutcome it is safe to call it again.
func (c *Client) Join(ctx context.Context, raftAddr, httpAddr string) (uint64, error) {
	q := url.Values{"peerAddress": {raftAddr}}
	if httpAddr != "" {
		q.Set("httpAddress", httpAddr)
	}
	// /join and /leave answer GET only. net/http may resend a GET whose
	// keep-alive connection broke; harmless here, as both are idempotent.
	a, _, err := c.leaderCall(ctx, leaderOp{name: "join", method: http.MethodGet, path: "/join?" + q.Encode()})
	if err != nil {
		return 0, err
	}
	if httpAddr != "" && checkAddr(httpAddr) == nil {
		c.mu.Lock()
		if !c.known[httpAddr] {
			c.known[httpAddr] = true
			c.members = append(c.members, httpAddr)
		}
		c.mu.Unlock()
	}
	return raftIndex(a.header), nil
}

// Leave asks the leader to remove the server whose Raft address is
// raftAddr (any spelling of its endpoint; not a member: no change, index 0)
// and returns once the removal is committed. Idempotent, as Join.
func (c *Client) Leave(ctx context.Context, raftAddr string) (uint64, error) {
	q := url.Values{"peerAddress": {raftAddr}}
	a, _, err := c.leaderCall(ctx, leaderOp{name: "leave", method: http.MethodGet, path: "/leave?" + q.Encode()})
	if err != nil {
		return 0, err
	}
	return raftIndex(a.header), nil
}

// write sends a form-encoded POST body (built by hand: url.Values would
// cost a map and a sort per write).
func (c *Client) write(ctx context.Context, name, path, form string) (uint64, error) {
	a, _, err := c.leaderCall(ctx, leaderOp{name: name, method: http.MethodPost, path: path, form: form})
	if err != nil {
		return 0, err
	}
	return raftIndex(a.header), nil
}

func raftIndex(h http.Header) uint64 {
	n, _ := strconv.ParseUint(h.Get("X-Raft-Index"), 10, 64) // absent: nothing written
	return n
}

// ---- routing ----

// answer is one HTTP exchange's result.
type answer struct {
	code   int
	body   string
	header http.Header
}

// leaderOp is a request only the leader serves.
type leaderOp struct {
	name   string
	method string
	path   string // with its query
	form   string // the POST body
	// read: a strong read, which changes nothing, so any failure may be
	// tried again; otherwise a failure after the request was sent is an
	// unknown outcome.
	read bool
}

// round tracks the members tried since the last wait: each is asked at
// most once per round, then the client waits (backoff) before the next.
type round struct {
	tried      map[string]bool
	notMembers int           // of those tried, how many answered "not a member"
	retryAfter time.Duration // the longest Retry-After heard
	looked     bool          // the members' /status was asked for the leader
}

func (r *round) mark(addr string) {
	if r.tried == nil {
		r.tried = map[string]bool{}
	}
	r.tried[addr] = true
}

// leaderCall sends op to the leader, finding it on the way, and returns its
// 2xx answer and the member that gave it. See Set for the rules.
func (c *Client) leaderCall(ctx context.Context, op leaderOp) (answer, string, error) {
	bo := c.backoff()
	var (
		r         round
		last      *Error // why the latest attempt did not succeed
		next      string // the leader a member named, to ask next
		redirects int
	)
	for {
		if err := ctx.Err(); err != nil {
			return answer{}, "", ended(op.name, last, err)
		}
		addr := next
		next = ""
		if addr == "" && !r.looked && !c.leaderKnown(r.tried) {
			// Ask the members' /status for the leader first, once a round,
			// rather than send a write blindly to a member that may hang
			// (a frozen follower would leave the write in doubt); a member
			// that does not answer is left out of this round.
			r.looked = true
			var err error
			if addr, err = c.findLeader(ctx, &r); err != nil {
				return answer{}, "", &Error{Op: op.name, Err: err}
			}
		}
		if addr == "" {
			addr = c.pick(r.tried, true)
		}
		if addr == "" {
			// Every member was tried: none leads, or none answers.
			if r.notMembers > 0 && r.notMembers == len(r.tried) {
				return answer{}, "", last
			}
			if !sleep(ctx, bo.next(r.retryAfter)) {
				return answer{}, "", ended(op.name, last, ctx.Err())
			}
			r = round{}
			c.refresh(ctx)
			continue
		}
		timeout := c.set.writeTimeout
		if op.read {
			timeout = c.set.readTimeout
		}
		a, sent, err := c.send(ctx, op.method, addr, op.path, op.form, true, timeout, !op.read)
		if err != nil {
			if sent && !op.read {
				return answer{}, "", &Error{Op: op.name, Addr: addr, Kind: ErrUnknownOutcome, Err: err}
			}
			if fatal(err) {
				return answer{}, "", &Error{Op: op.name, Addr: addr, Err: err}
			}
			if ctx.Err() != nil {
				return answer{}, "", ended(op.name, last, ctx.Err())
			}
			// Nothing reached it (or a read failed): ask another member.
			last = &Error{Op: op.name, Addr: addr, Kind: ErrUnavailable, Err: err}
			c.unreachable(addr)
			r.mark(addr)
			continue
		}
		switch {
		case a.code >= 200 && a.code < 300:
			c.setLeader(addr)
			return a, addr, nil
		case a.code == http.StatusTemporaryRedirect:
			// A refusal: not executed. Follow it, to a member only.
			hint, err := c.leaderHint(ctx, addr, a.header)
			if err != nil {
				return answer{}, "", &Error{Op: op.name, Addr: addr, Status: a.code, Kind: ErrUntrustedRedirect, Err: err}
			}
			last = &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrNoLeader}
			if r.tried[hint] {
				// It names a leader we could not reach this round: its news
				// is older than ours. Ask the others.
				r.mark(addr)
				continue
			}
			c.setLeader(hint)
			redirects++
			if redirects > 2*len(c.Members())+2 {
				// The leader keeps moving: let an election settle.
				redirects = 0
				if !sleep(ctx, bo.next(0)) {
					return answer{}, "", ended(op.name, last, ctx.Err())
				}
			}
			next = hint
		case a.code == http.StatusServiceUnavailable && a.body == "not a member\n":
			last = &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrNotMember}
			c.unreachable(addr)
			r.mark(addr)
			r.notMembers++
		case a.code == http.StatusServiceUnavailable:
			// No leader known there. Others may know one; after them, wait
			// at least as long as asked.
			last = &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrNoLeader}
			c.notLeader(addr)
			r.mark(addr)
			r.retryAfter = max(r.retryAfter, retryAfter(a.header))
		case op.read && a.code >= 500 && a.code != http.StatusInsufficientStorage:
			last = &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrUnavailable}
			c.notLeader(addr)
			r.mark(addr)
		case a.code == http.StatusBadGateway && op.name == "join":
			return answer{}, "", &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrPeerUnreachable}
		case a.code >= 500 && a.code != http.StatusInsufficientStorage:
			// "internal error": it may have been executed.
			return answer{}, "", &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrUnknownOutcome}
		default:
			return answer{}, "", &Error{Op: op.name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: kindOf(a.code)}
		}
	}
}

// anyCall sends a GET that any member serves (a stale get, a status),
// starting with the current read target and moving on from a member that
// fails, until one answers or ctx ends.
func (c *Client) anyCall(ctx context.Context, name, pathQuery string, withToken bool) (answer, error) {
	bo := c.backoff()
	var (
		r    round
		last *Error
	)
	for {
		if err := ctx.Err(); err != nil {
			return answer{}, ended(name, last, err)
		}
		addr := c.pick(r.tried, false)
		if addr == "" {
			if r.notMembers > 0 && r.notMembers == len(r.tried) {
				return answer{}, last
			}
			if !sleep(ctx, bo.next(0)) {
				return answer{}, ended(name, last, ctx.Err())
			}
			r = round{}
			c.refresh(ctx)
			continue
		}
		a, _, err := c.send(ctx, http.MethodGet, addr, pathQuery, "", withToken, c.set.readTimeout, false)
		if err != nil {
			if fatal(err) {
				return answer{}, &Error{Op: name, Addr: addr, Err: err}
			}
			if ctx.Err() != nil {
				return answer{}, ended(name, last, ctx.Err())
			}
			last = &Error{Op: name, Addr: addr, Kind: ErrUnavailable, Err: err}
			c.unreachable(addr)
			r.mark(addr)
			continue
		}
		switch {
		case a.code == http.StatusOK:
			return a, nil
		case a.code == http.StatusServiceUnavailable && a.body == "not a member\n":
			last = &Error{Op: name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrNotMember}
			c.unreachable(addr)
			r.mark(addr)
			r.notMembers++
		case a.code >= 500:
			last = &Error{Op: name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: ErrUnavailable}
			c.unreachable(addr)
			r.mark(addr)
		default:
			return answer{}, &Error{Op: name, Addr: addr, Status: a.code, Body: trim(a.body), Kind: kindOf(a.code)}
		}
	}
}

// ended is the error of a call whose context ended: why the last attempt
// failed (no leader, unreachable, …), and the context's error.
func ended(op string, last *Error, ctxErr error) error {
	if last == nil {
		return &Error{Op: op, Kind: ErrUnavailable, Err: ctxErr}
	}
	e := *last
	if e.Kind == nil || e.Kind == ErrNotMember {
		e.Kind = ErrUnavailable
	}
	e.Err = errors.Join(ctxErr, last.Err)
	return &e
}

// kindOf maps a status code that ends a call to its error kind.
func kindOf(code int) error {
	switch code {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return ErrTooLarge
	case http.StatusInsufficientStorage:
		return ErrCacheFull
	}
	return nil
}

// fatal reports a failure that no other member would avoid: the TLS setup
// does not match the cluster's.
func fatal(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &rh)
}

func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// retryAfter reads a Retry-After in seconds (what stcached sends), capped.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 30)) * time.Second
}

// leaderHint returns the member a 307 names (X-Raft-Leader, and the host of
// Location, which must agree). An address the client does not know is
// looked up once in from's /status; if it is still not a member, it is an
// error: the request, and the token, would go to a stranger.
func (c *Client) leaderHint(ctx context.Context, from string, h http.Header) (string, error) {
	var hints []string
	if l := h.Get("X-Raft-Leader"); l != "" {
		hints = append(hints, l)
	}
	if loc := h.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("redirect to %q", loc)
		}
		hints = append(hints, u.Host)
	}
	if len(hints) == 0 {
		return "", errors.New("a redirect without X-Raft-Leader or Location")
	}
	for _, hint := range hints {
		if !c.isKnown(hint) {
			c.refreshFrom(ctx, from)
		}
		if !c.isKnown(hint) {
			return "", fmt.Errorf("%s is not a member it knows (%s)", hint, strings.Join(c.Members(), ", "))
		}
	}
	return hints[0], nil
}

// send does one request to addr and reads the whole answer. sent reports
// whether any of the request may have reached the member (its headers
// were handed to the connection): when false, nothing was executed. It is
// only tracked when trace is set (writes), as it costs allocations.
func (c *Client) send(ctx context.Context, method, addr, pathQuery, form string, withToken bool, timeout time.Duration, trace bool) (a answer, sent bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wrote atomic.Bool
	if trace {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	} else {
		wrote.Store(true) // unknown: assume sent
	}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.scheme+addr+pathQuery, body)
	if err != nil {
		return answer{}, false, err
	}
	// Set straight into the map, canonical names already: net/http only
	// reads these slices.
	if method == http.MethodPost {
		req.Header["Content-Type"] = formType
	}
	if withToken && c.auth != nil {
		req.Header["Authorization"] = c.auth
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, wrote.Load(), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err == nil && len(b) > maxAnswer {
		err = errors.New("answer too large")
	}
	if err != nil {
		return answer{}, true, fmt.Errorf("read the answer (status %d): %w", resp.StatusCode, err)
	}
	return answer{code: resp.StatusCode, body: string(b), header: resp.Header}, true, nil
}

// ---- what the client knows of the cluster ----

// pick returns the member to ask next: the leader if wanted and known, else
// the read target and those after it, skipping tried; "" when all were.
func (c *Client) pick(tried map[string]bool, leader bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leader && c.leader != "" && !tried[c.leader] {
		return c.leader
	}
	n := len(c.members)
	for i := range n {
		if a := c.members[(c.cur+i)%n]; !tried[a] {
			return a
		}
	}
	return ""
}

// leaderKnown reports whether the client knows a leader not tried yet.
func (c *Client) leaderKnown(tried map[string]bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader != "" && !tried[c.leader]
}

// findLeader asks the members' /status, in read order, which one leads,
// and returns it ("" if none knows). Members that do not answer are marked
// tried in r. Its error is a failure no member would avoid (TLS).
func (c *Client) findLeader(ctx context.Context, r *round) (string, error) {
	c.mu.Lock()
	order := make([]string, 0, len(c.members))
	for i := range c.members {
		order = append(order, c.members[(c.cur+i)%len(c.members)])
	}
	c.mu.Unlock()
	for _, a := range order {
		if r.tried[a] {
			continue
		}
		st, err := c.statusOf(ctx, a)
		if ctx.Err() != nil {
			return "", nil
		}
		if fatal(err) {
			return "", err
		}
		if err != nil {
			c.unreachable(a)
			r.mark(a)
			continue
		}
		c.learn(st)
		switch {
		case !st.Member:
			// Removed: its view of the leader is not to be trusted either.
		case st.State == "Leader" && st.Writable:
			c.setLeader(a)
			return a, nil
		case st.LeaderHTTP != "" && st.LeaderHTTP != a && c.isKnown(st.LeaderHTTP) && !r.tried[st.LeaderHTTP]:
			c.setLeader(st.LeaderHTTP)
			return st.LeaderHTTP, nil
		}
	}
	return "", nil
}

func (c *Client) setLeader(addr string) {
	c.mu.Lock()
	c.leader = addr
	c.mu.Unlock()
}

// notLeader forgets addr as the leader.
func (c *Client) notLeader(addr string) {
	c.mu.Lock()
	if c.leader == addr {
		c.leader = ""
	}
	c.mu.Unlock()
}

// unreachable forgets addr as the leader and moves reads off it.
func (c *Client) unreachable(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == addr {
		c.leader = ""
	}
	if n := len(c.members); n > 0 && c.members[c.cur%n] == addr {
		c.cur = (c.cur + 1) % n
	}
}

func (c *Client) isKnown(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known[addr]
}

// refresh learns the members from the first member whose /status answers
// (best effort: on failure the client keeps what it knew).
func (c *Client) refresh(ctx context.Context) {
	for _, a := range c.Members() {
		if c.refreshFrom(ctx, a) {
			return
		}
	}
}

// refreshFrom learns the members from addr's /status: the addresses given
// to New stay, the others are replaced by what addr lists.
func (c *Client) refreshFrom(ctx context.Context, addr string) bool {
	st, err := c.statusOf(ctx, addr)
	if err != nil {
		return false
	}
	c.learn(st)
	return true
}

func (c *Client) learn(st *Status) {
	if !st.Member {
		// A removed node's configuration is its last before removal: not
		// a list to trust.
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := ""
	if n := len(c.members); n > 0 {
		cur = c.members[c.cur%n]
	}
	known := map[string]bool{}
	members := slices.Clone(c.seeds)
	for _, a := range members {
		known[a] = true
	}
	for _, s := range st.Servers {
		if s.HTTP != "" && !known[s.HTTP] && checkAddr(s.HTTP) == nil {
			known[s.HTTP] = true
			members = append(members, s.HTTP)
		}
	}
	c.members, c.known = members, known
	c.cur = max(0, slices.Index(members, cur))
	if c.leader != "" && !known[c.leader] {
		c.leader = ""
	}
}

// ---- waiting ----

type backoff struct {
	first, most, cur time.Duration
}

func (c *Client) backoff() backoff {
	return backoff{first: c.set.backoffMin, most: c.set.backoffMax}
}

// next returns the next wait: doubling from first to most, jittered down to
// half (so many clients do not retry in step), and at least floor (a
// Retry-After) plus up to a fifth of it.
func (b *backoff) next(floor time.Duration) time.Duration {
	if b.cur == 0 {
		b.cur = b.first
	} else {
		b.cur = min(2*b.cur, b.most)
	}
	d := b.cur/2 + rand.N(b.cur/2+1)
	if floor > 0 {
		d = max(d, floor+rand.N(floor/5+1))
	}
	return d
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
