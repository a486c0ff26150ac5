package main

// What the supervisor serves: its API under /lab-api/, and every other path
// from the first node that answers, so the live page, its /status and its
// /events come from the page's own origin.
//
// It guards itself as the nodes do (origin.go at the repository's root): a
// browser reaches 127.0.0.1 too, and these actions send signals.
//   - the Host header must be an IP literal or localhost (no DNS rebinding);
//   - an action a browser sends for a page other than this one or a node's
//     is refused: 403 forbidden: cross-site request.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pageOrigins are the origins of this supervisor's page: its -addr, and the
// same port under the other loopback spelling, since a reader may type
// either (the nodes accept both through -allow-origin).
func pageOrigins(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{"http://" + addr}
	}
	out := []string{"http://" + strings.ToLower(addr)}
	switch {
	case host == "127.0.0.1":
		out = append(out, "http://localhost:"+port)
	case strings.EqualFold(host, "localhost"):
		out = append(out, "http://127.0.0.1:"+port)
	}
	return out
}

type server struct {
	lab     *lab
	origins map[string]bool // this page's and the nodes' pages'
	proxy   *httputil.ReverseProxy
}

func newHandler(l *lab) http.Handler {
	s := &server{lab: l, origins: map[string]bool{}}
	for _, o := range pageOrigins(l.addr) {
		s.origins[o] = true
	}
	for _, n := range l.nodes {
		s.origins["http://"+n.http] = true
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The node sees its own address as Host (its Host check passes)
			// and the page's Origin, which -allow-origin admits.
			pr.SetURL(&url.URL{Scheme: "http", Host: s.firstCandidate()})
		},
		Transport: &failover{lab: l, base: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: time.Second}).DialContext,
			ResponseHeaderTimeout: 5 * time.Second, // a node frozen from a terminal: on to the next
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       30 * time.Second,
		}},
		// Server-Sent Events (text/event-stream) are flushed as they come
		// by ReverseProxy itself (flushInterval is -1 for them), so /events
		// streams through: no FlushInterval needed.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			l.log.Debug("no node answered", "path", r.URL.Path, "error", err)
			text(w, http.StatusBadGateway, "no node answers\n")
		},
		ErrorLog: l.log.Named("proxy").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/lab-api/nodes", s.cors(s.listNodes))
	mux.HandleFunc("/lab-api/nodes/{name}/{action}", s.cors(s.action(s.nodeAction)))
	mux.HandleFunc("/lab-api/heal-all", s.cors(s.action(s.healAll)))
	mux.HandleFunc("/lab-api/", s.cors(func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusNotFound, "not found\n")
	}))
	mux.Handle("/", s.proxy)
	return s.checkHost(mux)
}

// checkHost refuses a Host that is neither an IP literal nor localhost: a
// name an attacker's DNS points at 127.0.0.1 arrives with that name.
func (s *server) checkHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !knownHost(r.Host) {
			text(w, http.StatusForbidden, "forbidden: unknown host\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func knownHost(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0: no browser sends it
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost")
}

// allowedOrigin: this page (under the Host the request names, or its
// -addr), or a node's own page. Never "null".
func (s *server) allowedOrigin(origin, host string) bool {
	o := strings.ToLower(origin)
	if host != "" && o == "http://"+strings.ToLower(host) {
		return true
	}
	return s.origins[o]
}

// crossSite: a browser sent it for a page that may not act here. Programs
// (curl) send neither header.
func (s *server) crossSite(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	o := r.Header.Get("Origin")
	return o != "" && !s.allowedOrigin(o, r.Host)
}

// cors lets a node's own page (and this one) call the API and read the
// answer: the origin is echoed, never "*".
func (s *server) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		hd := w.Header()
		hd.Add("Vary", "Origin")
		allowed := origin != "" && s.allowedOrigin(origin, r.Host)
		if allowed {
			hd.Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method == http.MethodOptions {
			if allowed {
				hd.Set("Access-Control-Allow-Methods", "GET, POST")
				hd.Set("Access-Control-Max-Age", "600")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}

// action guards a state-changing route: cross-site first (as the nodes
// order their checks), then the method.
func (s *server) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.crossSite(r) {
			s.lab.log.Warn("refused a cross-site action", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
			text(w, http.StatusForbidden, "forbidden: cross-site request\n")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			text(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		h(w, r)
	}
}

func (s *server) listNodes(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		text(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	b, err := json.Marshal(s.lab.views())
	if err != nil {
		s.lab.log.Error("encode nodes", "error", err)
		text(w, http.StatusInternalServerError, "internal error\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

func (s *server) nodeAction(w http.ResponseWriter, r *http.Request) {
	n := s.lab.node(r.PathValue("name"))
	if n == nil {
		text(w, http.StatusNotFound, "unknown node\n")
		return
	}
	var err error
	switch r.PathValue("action") {
	case "crash":
		err = s.lab.crash(n)
	case "restart":
		err = s.lab.restart(n)
	case "freeze":
		err = s.lab.freeze(n)
	case "thaw":
		err = s.lab.thaw(n)
	default:
		text(w, http.StatusNotFound, "unknown action: want crash, restart, freeze or thaw\n")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	text(w, http.StatusOK, "ok\n")
}

func (s *server) healAll(w http.ResponseWriter, r *http.Request) {
	did, err := s.lab.healAll(r.Context())
	if err != nil {
		s.lab.log.Error("heal all", "error", err)
		text(w, http.StatusBadGateway, did)
		return
	}
	text(w, http.StatusOK, did)
}

// fail answers a refused or failed action: 409 with the reason when the
// node's state forbids it, else 500.
func (s *server) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, errConflict) {
		text(w, http.StatusConflict, strings.TrimPrefix(err.Error(), errConflict.Error()+": ")+"\n")
		return
	}
	s.lab.log.Error("action failed", "error", err)
	text(w, http.StatusInternalServerError, fmt.Sprintf("%v\n", err))
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// ---- the relay to the nodes

// candidates are the nodes that may answer, in order: running, not frozen
// (a frozen node accepts connections and never answers).
func (l *lab) candidates() []string {
	var out []string
	for _, n := range l.nodes {
		if l.view(n).State == stateRunning {
			out = append(out, n.http)
		}
	}
	return out
}

func (s *server) firstCandidate() string {
	if c := s.lab.candidates(); len(c) > 0 {
		return c[0]
	}
	return s.lab.nodes[0].http // it will fail, and say so
}

// failover sends a request to the node Rewrite chose and, if that one does
// not answer, to the next that may. Only a request without a body is sent
// again (its body is gone once sent), and only a GET or HEAD after the
// request may have reached a node: a write is never sent twice.
type failover struct {
	lab  *lab
	base http.RoundTripper
}

func (f *failover) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.base.RoundTrip(r)
	if err == nil {
		return resp, nil
	}
	idempotent := r.Method == http.MethodGet || r.Method == http.MethodHead
	if (r.Body != nil && r.Body != http.NoBody) || (!idempotent && !isDialError(err)) {
		return nil, err
	}
	errs := []error{err}
	for _, h := range f.lab.candidates() {
		if h == r.URL.Host {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.URL.Host, r2.Host = h, h
		resp, err := f.base.RoundTrip(r2)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		if !idempotent && !isDialError(err) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// isDialError: the connection was never made, so nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
