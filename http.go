package main

import (
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
)

// Size limits of the contract.
const (
	maxKeyBytes   = 1 << 10
	maxValueBytes = 1 << 20
	// A form body may percent-encode every byte (three bytes each).
	maxFormBody = 3*(maxKeyBytes+maxValueBytes) + 4096
	// minTTL: shorter deadlines would expire before the write is applied
	// on the followers, and clocks are not that close.
	minTTL = time.Second
)

// store is what the HTTP layer needs of a node. It knows nothing of Raft:
// every error it returns is a *refusal (not executed), errNotMember, a
// *conflict, errUnreachablePeer, or an internal error (may have been
// executed). Writes return the index of the log entry that carried them
// (0: nothing was written).
type store interface {
	Set(key, value string, ttl time.Duration) (index uint64, err error)
	Delete(key string) (index uint64, err error)
	Get(key string, strong bool) (value string, found bool, err error)
	Join(raftAddr, httpAddr string, fresh bool) (index uint64, err error)
	Leave(raftAddr string) (index uint64, err error)
	Status() status
	Members() []server
	// Log visits this node's own log entries (log.go).
	Log(from, to uint64, head func(first, last uint64), visit func(logEntry) error) error
	// Lab is this node's link faults, or nil without -lab (lab.go).
	Lab() *lab
	// TransferLeadership and SnapshotNow are the lab's "hand over" and
	// "snapshot now" (only served with -lab).
	TransferLeadership(to string) error
	SnapshotNow() (taken bool, err error)
}

// api serves the contract's HTTP endpoints.
type api struct {
	store  store
	events *hub
	log    hclog.Logger
	sec    security
	origin *originPolicy
	relay  *relay
}

// security is how the API is exposed: the scheme of the Location headers it
// writes (https when TLS is on), the token that guards the endpoints that
// read or change data or membership ("" = none, as in the tutorial), and who
// may send requests (origin.go: nil allows any Host and origin, for tests
// of the handlers alone).
type security struct {
	https  bool
	token  string
	origin *originPolicy
	peers  *joiner // how this node calls members (relay.go); nil: plain HTTP
}

// uiFiles is the live view: plain files, embedded so the binary serves it
// offline, on every node.
//
//go:embed ui
var uiFiles embed.FS

// route is one row of the routing table: what a path needs before its
// handler runs.
type route struct {
	path    string
	h       http.HandlerFunc
	token   bool // needs the token, when there is one
	changes bool // changes state: a browser may send it only from a member's page
	cors    bool // a page served by another member may call it (and read the answer)
	forward bool // may name another member to send it to (X-Stcache-Forward, relay.go)
}

// newHandler is the API's one routing table. extra adds routes served as
// they are, past the Host check only (/metrics; /debug/pprof/, which main.go
// puts behind the token itself); nil adds none.
//
// Every request goes through the same checks in the same order: its Host
// (every path), then the token, then the cross-site check (routes that change
// state), then its method and parameters, then the node's refusal or redirect.
func newHandler(s store, events *hub, log hclog.Logger, sec security, extra map[string]http.Handler) http.Handler {
	peers := sec.peers
	if peers == nil {
		peers = newJoiner(nil, "")
	}
	a := &api{store: s, events: events, log: log, sec: sec, origin: sec.origin, relay: newRelay(peers, events.done)}
	ui, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := uiHeaders(http.StripPrefix("/ui/", http.FileServer(http.FS(ui))))
	// GET everywhere, as in the tutorial; HEAD only where nothing changes.
	// /status, /events and /ui carry no keys or values and need no token.
	routes := []route{
		{path: "/set", h: a.methods(a.set, http.MethodGet, http.MethodPost), token: true, changes: true, cors: true, forward: true},
		{path: "/get", h: a.get, token: true, cors: true, forward: true},
		{path: "/delete", h: a.methods(a.del, http.MethodGet, http.MethodPost), token: true, changes: true, cors: true, forward: true},
		{path: "/join", h: a.methods(a.join, http.MethodGet), token: true, changes: true, cors: true, forward: true},
		{path: "/leave", h: a.methods(a.leave, http.MethodGet), token: true, changes: true, cors: true, forward: true},
		{path: "/status", h: a.methods(a.status, http.MethodGet, http.MethodHead)},
		{path: "/events", h: a.methods(a.streamEvents, http.MethodGet), cors: true},
		{path: "/log", h: a.methods(a.logView, http.MethodGet), token: true, cors: true, forward: true},
		{path: "/lab/cut", h: a.labAction("cut"), token: true, changes: true, cors: true, forward: true},
		{path: "/lab/slow", h: a.labAction("slow"), token: true, changes: true, cors: true, forward: true},
		{path: "/lab/heal", h: a.labAction("heal"), token: true, changes: true, cors: true, forward: true},
		{path: "/lab/transfer", h: a.labAction("transfer"), token: true, changes: true, cors: true, forward: true},
		{path: "/lab/snapshot", h: a.labAction("snapshot"), token: true, changes: true, cors: true, forward: true},
		{path: "/ui/", h: files.ServeHTTP},
		{path: "/ui", h: func(w http.ResponseWriter, r *http.Request) {
			r.URL.Path = "/ui/"
			files.ServeHTTP(w, r)
		}},
		{path: "/{$}", h: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/ui", http.StatusFound)
		}},
	}
	mux := http.NewServeMux()
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	var getH http.HandlerFunc
	for _, rt := range routes {
		if rt.h == nil {
			continue // a feature this node runs without (-lab): 404
		}
		h := a.checked(rt)
		mux.HandleFunc(rt.path, h)
		if rt.path == "/get" {
			getH = h
		}
	}
	return &routed{mux: mux, get: getH, origin: sec.origin}
}

// checked wraps a route's handler in the checks its row asks for, in the
// contract's order (the Host check, common to every path, is in routed).
func (a *api) checked(rt route) http.HandlerFunc {
	h := rt.h
	if rt.forward {
		h = a.forwarded(h)
	}
	if rt.changes {
		h = a.sameSite(h)
	}
	if rt.token {
		h = requireToken(a.sec.token, h)
	}
	if rt.cors {
		h = a.cors(h)
	}
	return h
}

// sameSite refuses a state-changing request that a browser sent for a page
// that is not a member's (or an allowed origin's): an <img> or a form on a
// stranger's site must change nothing.
func (a *api) sameSite(h http.HandlerFunc) http.HandlerFunc {
	if a.origin == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if a.origin.crossSite(r.Header, r.Host) {
			text(w, http.StatusForbidden, "forbidden: cross-site request\n")
			return
		}
		h(w, r)
	}
}

// uiHeaders sends the page with a policy that runs only its own script
// files (no inline script, no eval), so a value that slipped into the DOM
// as markup still cannot run, and forbids guessing content types.
func uiHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src *; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// routed checks every request's Host first, then sends /get, the hot path,
// straight to its handler, and everything else through the ServeMux: the
// mux's pattern matching was 2% of a stale get's CPU under load. The mux
// still holds /get, so both ways agree.
type routed struct {
	mux    *http.ServeMux
	get    http.HandlerFunc
	origin *originPolicy
}

func (h *routed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.origin != nil && !h.origin.knownHost(r.Host) {
		text(w, http.StatusForbidden, "forbidden: unknown host\n")
		return
	}
	if r.URL.Path == "/get" {
		h.get(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// cors lets a page served by one member call another (the live view's
// write form sends to the leader; it subscribes to every member's events)
// and read the index of its write. Only members' pages and -allow-origin
// get an answer they may read: the origin is echoed, never "*". Reads of
// values stay same-origin.
func (a *api) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (a.origin == nil || a.origin.allowedOrigin(origin, r.Host))
		hd := w.Header()
		if origin != "" {
			// Only a browser sends Origin; programs' answers (the hot
			// path) carry no CORS headers to vary.
			hd.Add("Vary", "Origin")
		}
		if allowed {
			hd.Set("Access-Control-Allow-Origin", origin)
			hd.Set("Access-Control-Expose-Headers", "X-Raft-Index, X-Raft-Leader, Location")
		}
		if r.Method == http.MethodOptions {
			if allowed {
				hd.Set("Access-Control-Allow-Methods", "GET, POST")
				hd.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Stcache-Forward")
				hd.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}

// streamEvents is GET /events: this node's Raft, as Server-Sent Events,
// opening with its status (node = Raft server ID, as in every event; the
// name goes in "name"). With node=<server ID> of another member, that
// member's stream, relayed (relay.go).
func (a *api) streamEvents(w http.ResponseWriter, r *http.Request, p url.Values) {
	if id := p.Get("node"); id != "" && id != a.events.node {
		a.relayEvents(w, r, id)
		return
	}
	a.events.serveEvents(w, r, func() map[string]any {
		st := a.store.Status()
		b, err := json.Marshal(st)
		fields := map[string]any{}
		if err == nil {
			err = json.Unmarshal(b, &fields)
		}
		if err != nil {
			a.log.Error("encode status event", "error", err)
		}
		fields["name"] = st.Node
		return fields
	})
}

// methods allows only the given methods and parses the query (and a form
// body) once, so handlers only see well-formed parameters.
func (a *api) methods(h func(http.ResponseWriter, *http.Request, url.Values), allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok := false
		for _, m := range allowed {
			ok = ok || r.Method == m
		}
		if !ok {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			text(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		params, code, msg := parseParams(w, r)
		if code != 0 {
			text(w, code, msg)
			return
		}
		h(w, r, params)
	}
}

// parseParams returns the request's parameters: the query, and for a POST
// the form body too (body values first, as net/http's Request.Form does).
// Unlike Request.ParseForm it reports a malformed query instead of dropping
// it, so "a=%zz" is a 400, not a request with no parameters.
func parseParams(w http.ResponseWriter, r *http.Request) (url.Values, int, string) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, http.StatusBadRequest, "param error\n"
	}
	if r.Method != http.MethodPost {
		return params, 0, ""
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, http.StatusUnsupportedMediaType, "POST body must be application/x-www-form-urlencoded\n"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, http.StatusRequestEntityTooLarge, "request too large\n"
	}
	if errors.Is(err, os.ErrDeadlineExceeded) { // limitBody's deadline
		return nil, http.StatusRequestTimeout, "request timeout: body too slow\n"
	}
	if err != nil {
		return nil, http.StatusBadRequest, "param error\n"
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, http.StatusBadRequest, "param error\n"
	}
	for k, vs := range params {
		form[k] = append(form[k], vs...)
	}
	return form, 0, ""
}

// key returns the request's key, or the status and body of its 4xx.
func key(p url.Values) (string, int, string) {
	return checkKey(p.Get("key"))
}

func checkKey(k string) (string, int, string) {
	switch {
	case k == "" || !utf8.ValidString(k) || k[0] == 0:
		// A leading NUL is reserved for stcache's own records (fsm.go).
		return "", http.StatusBadRequest, "param error\n"
	case len(k) > maxKeyBytes:
		return "", http.StatusRequestEntityTooLarge, "key too large\n"
	}
	return k, 0, ""
}

func (a *api) set(w http.ResponseWriter, r *http.Request, p url.Values) {
	k, code, msg := key(p)
	if code != 0 {
		text(w, code, msg)
		return
	}
	v := p.Get("value")
	switch {
	case v == "" || !utf8.ValidString(v):
		text(w, http.StatusBadRequest, "param error\n")
		return
	case len(v) > maxValueBytes:
		text(w, http.StatusRequestEntityTooLarge, "value too large\n")
		return
	}
	var ttl time.Duration
	if s := p.Get("ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < minTTL {
			text(w, http.StatusBadRequest, "param error\n")
			return
		}
		ttl = d
	}
	index, err := a.store.Set(k, v, ttl)
	if err != nil {
		a.failWrite(w, r, p, err)
		return
	}
	setIndex(w, index)
	text(w, http.StatusOK, "ok\n")
}

// setIndex tells the client which log entry carried its write, so it can
// watch that index reach each node (/events, /status).
func setIndex(w http.ResponseWriter, index uint64) {
	if index != 0 {
		// The key is already canonical: Header.Set would check it again
		// on every write.
		w.Header()["X-Raft-Index"] = []string{strconv.FormatUint(index, 10)}
	}
}

func (a *api) del(w http.ResponseWriter, r *http.Request, p url.Values) {
	k, code, msg := key(p)
	if code != 0 {
		text(w, code, msg)
		return
	}
	index, err := a.store.Delete(k)
	if err != nil {
		a.failWrite(w, r, p, err)
		return
	}
	setIndex(w, index)
	text(w, http.StatusOK, "ok\n")
}

// get is /get, the hot path: it reads its two parameters straight from the
// raw query (getParams) instead of building url.Values, and writes the value
// without building a new string, so a stale get allocates next to nothing
// of its own. Its answers are exactly those of the generic path.
func (a *api) get(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		text(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	rawKey, consistency, ok := getParams(r.URL.RawQuery)
	if !ok {
		text(w, http.StatusBadRequest, "param error\n")
		return
	}
	k, code, msg := checkKey(rawKey)
	if code != 0 {
		text(w, code, msg)
		return
	}
	var strong bool
	switch consistency {
	case "", "stale":
	case "strong":
		strong = true
	default:
		text(w, http.StatusBadRequest, "param error: consistency must be stale or strong\n")
		return
	}
	v, found, err := a.store.Get(k, strong)
	switch {
	case err != nil:
		a.fail(w, r, err)
	case !found:
		text(w, http.StatusNotFound, "\n")
	default:
		w.Header()["Content-Type"] = textPlain
		w.WriteHeader(http.StatusOK)
		bp := lineBufs.Get().(*[]byte)
		b := append(append((*bp)[:0], v...), '\n')
		_, _ = w.Write(b)     // a client that hung up is not our error
		if cap(b) <= 64<<10 { // large values would pin memory in the pool
			*bp = b
			lineBufs.Put(bp)
		}
	}
}

// maxQueryParams is net/url's own limit on query parameters (its default,
// without a GODEBUG urlmaxqueryparams setting), past which ParseQuery fails.
const maxQueryParams = 10000

// textPlain is the Content-Type of every answer, shared: net/http only
// reads it, and a fresh slice per answer was an allocation.
var textPlain = []string{"text/plain; charset=utf-8"}

// lineBufs hold a value and its newline for one write.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// getParams returns the first "key" and "consistency" of a raw query, and
// false if the query is malformed: exactly what url.ParseQuery followed by
// Values.Get would give (a fuzz test holds it to that), without building the
// map. Names and values are unescaped only when they hold '%' or '+'.
func getParams(raw string) (key, consistency string, ok bool) {
	if strings.Count(raw, "&")+1 > maxQueryParams {
		return "", "", false
	}
	var haveKey, haveCons bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(pair, ";") {
			return "", "", false
		}
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		name, okName := unescapeQuery(name)
		value, okValue := unescapeQuery(value)
		if !okName || !okValue {
			return "", "", false
		}
		switch {
		case name == "key" && !haveKey:
			key, haveKey = value, true
		case name == "consistency" && !haveCons:
			consistency, haveCons = value, true
		}
	}
	return key, consistency, true
}

// unescapeQuery is url.QueryUnescape that returns s itself when there is
// nothing to unescape.
func unescapeQuery(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}

// validAddr reports whether s is host:port with a non-empty host and a
// numeric port: a typo must never reach the Raft configuration.
func validAddr(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.ContainsAny(host, " /?#@") {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

func (a *api) join(w http.ResponseWriter, r *http.Request, p url.Values) {
	peer := p.Get("peerAddress")
	if !validAddr(peer) {
		text(w, http.StatusBadRequest, "invalid peerAddress\n")
		return
	}
	httpAddr := p.Get("httpAddress")
	if httpAddr != "" && !validAddr(httpAddr) {
		text(w, http.StatusBadRequest, "invalid httpAddress\n")
		return
	}
	var fresh bool
	switch p.Get("fresh") {
	case "", "false":
	case "true":
		fresh = true
	default:
		text(w, http.StatusBadRequest, "invalid fresh: want true or false\n")
		return
	}
	index, err := a.store.Join(peer, httpAddr, fresh)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setIndex(w, index)
	text(w, http.StatusOK, "ok")
}

func (a *api) leave(w http.ResponseWriter, r *http.Request, p url.Values) {
	peer := p.Get("peerAddress")
	if !validAddr(peer) {
		text(w, http.StatusBadRequest, "invalid peerAddress\n")
		return
	}
	index, err := a.store.Leave(peer)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setIndex(w, index)
	text(w, http.StatusOK, "ok")
}

func (a *api) status(w http.ResponseWriter, _ *http.Request, _ url.Values) {
	b, err := json.MarshalIndent(a.store.Status(), "", "  ")
	if err != nil {
		a.log.Error("encode status", "error", err)
		text(w, http.StatusInternalServerError, "internal error\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n')) // a client that hung up is not our error
}

// failWrite is fail for /set and /delete, which a follower forwards to the
// leader instead of redirecting when the client asks for it (relay.go).
func (a *api) failWrite(w http.ResponseWriter, r *http.Request, p url.Values, err error) {
	var ref *refusal
	if wantsForward(r) && errors.As(err, &ref) && ref.LeaderHTTP != "" {
		a.forwardWrite(w, r, p, ref.LeaderHTTP)
		return
	}
	a.fail(w, r, err)
}

// fail maps a node error to its status code and body: the one place where
// that is decided.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ref *refusal
	var conf *conflict
	switch {
	case errors.Is(err, errNotMember):
		text(w, http.StatusServiceUnavailable, "not a member\n")
	case errors.Is(err, errCacheFull):
		text(w, http.StatusInsufficientStorage, "cache full\n")
	case errors.As(err, &conf):
		text(w, http.StatusConflict, conf.msg+"\n")
	case errors.As(err, &ref) && ref.LeaderHTTP != "":
		scheme := "http://"
		if a.sec.https {
			scheme = "https://"
		}
		w.Header().Set("Location", scheme+ref.LeaderHTTP+r.URL.RequestURI())
		w.Header().Set("X-Raft-Leader", ref.LeaderHTTP)
		text(w, http.StatusTemporaryRedirect, "write method not allowed\n")
	case errors.As(err, &ref):
		w.Header().Set("Retry-After", "1")
		text(w, http.StatusServiceUnavailable, "write method not allowed\n")
	case errors.Is(err, errUnreachablePeer):
		text(w, http.StatusBadGateway, "internal error: "+err.Error()+"\n")
	default:
		a.log.Warn("request failed", "path", r.URL.Path, "error", err)
		text(w, http.StatusInternalServerError, "internal error: "+err.Error()+"\n")
	}
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header()["Content-Type"] = textPlain
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body) // a client that hung up is not our error
}
