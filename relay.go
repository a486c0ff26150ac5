package main

// What one member fetches from another on behalf of a browser. Browsers
// refuse some ports outright (6000, the tutorial's first node, is X11's:
// ERR_UNSAFE_PORT in Chrome, Firefox and Safari), and a page cannot reach a
// member that its network cannot; so the live view asks the node that served
// it (or any member it can reach) for
//
//   - another member's event stream: GET /events?node=<server ID>, copied
//     through as it arrives;
//   - a write that this node, a follower, would redirect to the leader:
//     /set or /delete with "X-Stcache-Forward: leader", sent on to the leader
//     once and its answer passed back (a browser following the 307 would hit
//     the blocked port, or lose its Origin);
//   - a request for a named member: "X-Stcache-Forward: <server ID>" on the
//     routes that allow it (a read from a chosen node, /log, the lab's
//     actions), sent to that member after this node's own checks.
//
// Both only ever go to an address in this node's own membership data, with
// this node's scheme (and CA); the browser never names a host.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// forwardHeader asks a follower to forward a write to the leader instead of
// redirecting the client ("leader"), or any member to send the request on
// to the member with that server ID.
const forwardHeader = "X-Stcache-Forward"

// relay fetches from members: over HTTPS trusting the cluster's CA when TLS
// is on. Neither client follows redirects: a member answers a relayed
// request itself, and one sending us elsewhere is passed back as is.
type relay struct {
	scheme  string
	streams *http.Client  // no overall timeout: a stream lasts as long as the browser watches
	writes  *http.Client  // bounded like a write
	slots   chan struct{} // one per relayed stream: at most maxSubscribers at once
	done    <-chan struct{}
}

func newRelay(j *joiner, done <-chan struct{}) *relay {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	st := j.client.Transport.(*http.Transport).Clone()
	// A member that accepts the connection but never answers (frozen)
	// must not hold the browser's stream open with nothing in it.
	st.ResponseHeaderTimeout = 2 * time.Second
	st.DialContext = (&net.Dialer{Timeout: 2 * time.Second}).DialContext
	return &relay{
		scheme:  j.scheme,
		streams: &http.Client{Transport: st, CheckRedirect: noRedirect},
		writes:  &http.Client{Transport: j.client.Transport, CheckRedirect: noRedirect, Timeout: applyTimeout + 5*time.Second},
		slots:   make(chan struct{}, maxSubscribers),
		done:    done,
	}
}

// memberAddr returns the HTTP address of the member whose server ID is id,
// or answers the request itself (400 for no such member, 502 while its
// address is unknown) and returns false.
func (a *api) memberAddr(w http.ResponseWriter, id string) (string, bool) {
	addr, ok := memberHTTP(a.store.Members(), id)
	switch {
	case !ok:
		text(w, http.StatusBadRequest, "param error: no member has that server ID\n")
		return "", false
	case addr == "":
		text(w, http.StatusBadGateway, "internal error: the HTTP address of "+id+" is not known yet\n")
		return "", false
	}
	return addr, true
}

// memberHTTP returns the HTTP address of the member whose server ID is id.
func memberHTTP(members []server, id string) (string, bool) {
	for _, m := range members {
		if m.ID == id {
			return m.HTTP, true
		}
	}
	return "", false
}

// relayEvents copies member id's /events to w until either side ends, the
// server shuts down, or w accepts nothing for writeTimeout (as for a stream
// of our own).
func (a *api) relayEvents(w http.ResponseWriter, r *http.Request, id string) {
	addr, ok := a.memberAddr(w, id)
	if !ok {
		return
	}
	select {
	case a.relay.slots <- struct{}{}:
		defer func() { <-a.relay.slots }()
	default:
		w.Header().Set("Retry-After", "5")
		text(w, http.StatusServiceUnavailable, "too many event subscribers\n")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-a.relay.done: // this server shuts down: end the upstream too
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.relay.scheme+addr+"/events", nil)
	if err != nil {
		text(w, http.StatusBadGateway, "internal error: "+err.Error()+"\n")
		return
	}
	resp, err := a.relay.streams.Do(req)
	if err != nil {
		text(w, http.StatusBadGateway, fmt.Sprintf("internal error: %s is unreachable from this node: %v\n", id, err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		copyAnswer(w, resp)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Relayed-From", addr)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if rerr != nil {
			return // the member ended the stream, or went away: the browser sees it end
		}
	}
}

// wantsForward reports whether a refused write should be sent on to the
// leader rather than redirected.
func wantsForward(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get(forwardHeader), "leader")
}

// forwardWrite sends a write that this follower refused (nothing executed
// here) to the leader at leaderHTTP, once, and passes its answer back. The
// leader sees an ordinary client's request: the same path and parameters as
// a form body, and the caller's Authorization, which this node has already
// checked. A leader that has just stepped down answers with its own refusal,
// which the caller gets as is.
func (a *api) forwardWrite(w http.ResponseWriter, r *http.Request, p url.Values, leaderHTTP string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, a.relay.scheme+leaderHTTP+r.URL.Path, strings.NewReader(p.Encode()))
	if err != nil {
		text(w, http.StatusBadGateway, "internal error: "+err.Error()+"\n")
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := a.relay.writes.Do(req)
	if err != nil {
		// Sent, perhaps received: the write may or may not have happened.
		text(w, http.StatusBadGateway, fmt.Sprintf("internal error: forwarding to the leader %s: %v (the write may or may not have happened)\n", leaderHTTP, err))
		return
	}
	defer resp.Body.Close()
	w.Header().Set("X-Raft-Leader", leaderHTTP)
	copyAnswer(w, resp)
}

// forwarded sends a request that names another member in forwardHeader to
// that member; any other goes to h. It runs after this node's own checks
// (Host, token, cross-site), so it adds no way in.
func (a *api) forwarded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		to := r.Header.Get(forwardHeader)
		if to == "" || strings.EqualFold(to, "leader") || to == a.events.node {
			h(w, r)
			return
		}
		a.forwardTo(w, r, to)
	}
}

// maxAnswer bounds what a forwarded answer may carry: a value (1 MiB) and
// its escaping, or a page of /log.
const maxAnswer = 8 << 20

// forwardTo sends r, as it came (method, path, query, body, Authorization),
// to the member whose server ID is id, and passes its answer back.
func (a *api) forwardTo(w http.ResponseWriter, r *http.Request, id string) {
	addr, ok := a.memberAddr(w, id)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
	if err != nil {
		text(w, http.StatusRequestEntityTooLarge, "request too large\n")
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, a.relay.scheme+addr+r.URL.RequestURI(), strings.NewReader(string(body)))
	if err != nil {
		text(w, http.StatusBadGateway, "internal error: "+err.Error()+"\n")
		return
	}
	for _, h := range []string{"Content-Type", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := a.relay.writes.Do(req)
	if err != nil {
		text(w, http.StatusBadGateway, fmt.Sprintf("internal error: forwarding to %s: %v (if it changes state, it may or may not have happened)\n", id, err))
		return
	}
	defer resp.Body.Close()
	w.Header().Set("X-Relayed-From", addr)
	copyAnswer(w, resp)
}

// copyAnswer passes a member's answer on: its status, its type, the headers
// a client of the contract reads, and its body.
func copyAnswer(w http.ResponseWriter, resp *http.Response) {
	for _, h := range []string{"Content-Type", "X-Raft-Index", "X-Raft-Leader", "Location", "Retry-After", "WWW-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		text(w, http.StatusBadGateway, "internal error: reading the member's answer: "+err.Error()+"\n")
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header()["Content-Type"] = textPlain
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body) // a client that hung up is not our error
}
