package client_test

// The client's rules, against fake members (httptest servers) that answer
// exactly what a case needs: which answers end a call with which error,
// what is retried and what never is, and where the token goes.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stcache/stcache/client"
)

// fake is a member that answers every request but /status with answer.
type fake struct {
	srv    *httptest.Server
	addr   string
	mu     sync.Mutex
	seen   []*http.Request // every request but /status, in order
	auths  []string        // their Authorization headers
	answer func(n int, w http.ResponseWriter, r *http.Request)
}

func newFake(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *fake {
	return newFakeListing(t, "", answer)
}

// newFakeListing is newFake whose /status lists also as a member too.
func newFakeListing(t *testing.T, also string, answer func(n int, w http.ResponseWriter, r *http.Request)) *fake {
	f := &fake{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" {
			// A follower that knows no leader, and only itself (and also).
			servers := fmt.Sprintf(`{"id":"x","address":"x","suffrage":"Voter","http":%q}`, f.addr)
			if also != "" {
				servers += fmt.Sprintf(`,{"id":"y","address":"y","suffrage":"Voter","http":%q}`, also)
			}
			fmt.Fprintf(w, `{"state":"Follower","member":true,"servers":[%s]}`, servers)
			return
		}
		_ = r.ParseForm() // the body, before the handler hangs up
		f.mu.Lock()
		n := len(f.seen)
		f.seen = append(f.seen, r)
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		f.answer(n, w, r)
	}))
	f.addr = strings.TrimPrefix(f.srv.URL, "http://")
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func reply(code int, body string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

func newClient(t *testing.T, addrs []string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addrs, append([]client.Option{client.WithBackoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// A refusal or a malformed request is a typed error, sent once, never
// retried; the status and body are in the error.
func TestRefusalsAreTypedErrors(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		want error
	}{
		{401, "unauthorized\n", client.ErrUnauthorized},
		{403, "forbidden: unknown host\n", client.ErrForbidden},
		{400, "param error\n", client.ErrBadRequest},
		{413, "value too large\n", client.ErrTooLarge},
		{507, "cache full\n", client.ErrCacheFull},
		{503, "not a member\n", client.ErrNotMember},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			f := newFake(t, reply(tc.code, tc.body))
			c := newClient(t, []string{f.addr})
			_, err := c.Set(ctxT(t, 5*time.Second), "k", "v")
			var e *client.Error
			if !errors.Is(err, tc.want) || errors.Is(err, client.ErrUnknownOutcome) || !errors.As(err, &e) || e.Status != tc.code || e.Addr != f.addr {
				t.Fatalf("set answered %d: err %v, want %v with the status and member", tc.code, err, tc.want)
			}
			if f.requests() != 1 {
				t.Fatalf("set sent %d times, want once", f.requests())
			}
		})
	}
	f := newFake(t, reply(404, "\n"))
	c := newClient(t, []string{f.addr})
	if _, err := c.Get(ctxT(t, 5*time.Second), "k"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get of an absent key: %v, want ErrNotFound", err)
	}
}

// A write that may have been executed is never sent again: a 5xx, or a
// connection lost after the request went out, is ErrUnknownOutcome, and
// the other member never sees the write.
func TestUnknownOutcomeIsNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(int, http.ResponseWriter, *http.Request)
	}{
		{"500", reply(500, "internal error: timed out enqueuing operation\n")},
		{"connection lost", func(_ int, w http.ResponseWriter, _ *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
		{"no answer in time", func(_ int, _ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the client gives up
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := newFake(t, tc.answer)
			other := newFake(t, reply(200, "ok\n"))
			c := newClient(t, []string{bad.addr, other.addr}, client.WithWriteTimeout(300*time.Millisecond))
			for _, write := range []func(context.Context) (uint64, error){
				func(ctx context.Context) (uint64, error) { return c.Set(ctx, "k", "v") },
				func(ctx context.Context) (uint64, error) { return c.SetTTL(ctx, "k", "v", time.Minute) },
				func(ctx context.Context) (uint64, error) { return c.Delete(ctx, "k") },
			} {
				before := bad.requests()
				_, err := write(ctxT(t, 5*time.Second))
				if !errors.Is(err, client.ErrUnknownOutcome) {
					t.Fatalf("err %v, want ErrUnknownOutcome", err)
				}
				if n := bad.requests() - before; n != 1 || other.requests() != 0 {
					t.Fatalf("the write was sent %d times to the member that lost it and %d times to the other; want once and never", n, other.requests())
				}
			}
		})
	}
}

// A refused connection sent nothing: the next member is asked.
func TestRefusedConnectionTriesAnotherMember(t *testing.T) {
	ok := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Raft-Index", "42")
		fmt.Fprint(w, "ok\n")
	})
	c := newClient(t, []string{closedAddr(t), ok.addr})
	idx, err := c.Set(ctxT(t, 5*time.Second), "k", "v")
	if err != nil || idx != 42 {
		t.Fatalf("set: %d, %v; want 42 from the member that listens", idx, err)
	}
	r := ok.seen[0]
	if r.Method != http.MethodPost || r.PostForm.Get("key") != "k" || r.PostForm.Get("value") != "v" || r.URL.RawQuery != "" {
		t.Fatalf("the write went as %s %s with body %v; want a POST form", r.Method, r.URL, r.PostForm)
	}
}

// 503 (no leader): the client waits at least the Retry-After and tries
// again, until the context ends: ErrNoLeader, with the context's error.
func TestNoLeaderWaitsForRetryAfter(t *testing.T) {
	var at []time.Time
	var mu sync.Mutex
	f := newFake(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			fmt.Fprint(w, "write method not allowed\n")
			return
		}
		w.Header().Set("X-Raft-Index", "7")
		fmt.Fprint(w, "ok\n")
	})
	c := newClient(t, []string{f.addr})
	idx, err := c.Set(ctxT(t, 10*time.Second), "k", "v")
	if err != nil || idx != 7 {
		t.Fatalf("set: %d, %v; want 7 after the wait", idx, err)
	}
	if gap := at[1].Sub(at[0]); gap < time.Second {
		t.Fatalf("retried after %v, before the Retry-After of 1s", gap)
	}

	// The context ends during the wait (not while a write is in flight,
	// which would leave its outcome unknown).
	never := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(503)
		fmt.Fprint(w, "write method not allowed\n")
	})
	c = newClient(t, []string{never.addr})
	_, err = c.Set(ctxT(t, 500*time.Millisecond), "k", "v")
	if !errors.Is(err, client.ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnknownOutcome) {
		t.Fatalf("err %v, want ErrNoLeader and DeadlineExceeded", err)
	}
	if never.requests() != 1 {
		t.Fatalf("%d attempts in 500 ms, want one (then the Retry-After)", never.requests())
	}
}

// A 307 to a member is followed with the token; a 307 anywhere else is not
// followed at all (ErrUntrustedRedirect), so a stranger never sees the
// token: not through X-Raft-Leader, not through Location.
func TestTokenOnlyToMembers(t *testing.T) {
	const token = "a-token-of-enough-length"
	foreign := newFake(t, reply(200, "ok\n"))
	leader := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Raft-Index", "9")
		fmt.Fprint(w, "ok\n")
	})
	// redirect answers 307 naming header in X-Raft-Leader and location in
	// Location ("" = no such header).
	redirect := func(header, location string) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, r *http.Request) {
			if header != "" {
				w.Header().Set("X-Raft-Leader", header)
			}
			if location != "" {
				w.Header().Set("Location", "http://"+location+r.URL.RequestURI())
			}
			w.WriteHeader(307)
			fmt.Fprint(w, "write method not allowed\n")
		}
	}
	for _, tc := range []struct {
		name             string
		header, location string
	}{
		{"X-Raft-Leader and Location", foreign.addr, foreign.addr},
		{"X-Raft-Leader only", foreign.addr, ""},
		{"Location only", "", foreign.addr},
		{"a member's X-Raft-Leader, a stranger's Location", leader.addr, foreign.addr},
		{"a stranger's X-Raft-Leader, a member's Location", foreign.addr, leader.addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			member := newFake(t, redirect(tc.header, tc.location))
			c := newClient(t, []string{member.addr, leader.addr}, client.WithToken(token))
			for _, call := range []func(ctx context.Context) error{
				func(ctx context.Context) error { _, err := c.Set(ctx, "k", "v"); return err },
				func(ctx context.Context) error { _, err := c.GetStrong(ctx, "k"); return err },
				func(ctx context.Context) error { _, err := c.Delete(ctx, "k"); return err },
			} {
				err := call(ctxT(t, 5*time.Second))
				if !errors.Is(err, client.ErrUntrustedRedirect) || errors.Is(err, client.ErrUnknownOutcome) {
					t.Fatalf("err %v, want ErrUntrustedRedirect", err)
				}
			}
			if foreign.requests() != 0 {
				t.Fatalf("the stranger got %d requests (Authorization %q)", foreign.requests(), foreign.auths)
			}
			if member.auths[0] != "Bearer "+token {
				t.Fatalf("the member got Authorization %q", member.auths[0])
			}
		})
	}

	// The same redirect to a member is followed, with the token.
	member := newFake(t, redirect(leader.addr, leader.addr))
	c := newClient(t, []string{member.addr, leader.addr}, client.WithToken(token))
	before := leader.requests()
	if idx, err := c.Set(ctxT(t, 5*time.Second), "k", "v"); err != nil || idx != 9 {
		t.Fatalf("set through a redirect to a member: %d, %v", idx, err)
	}
	if leader.requests() != before+1 || leader.auths[len(leader.auths)-1] != "Bearer "+token {
		t.Fatalf("the leader got %d requests, the last with Authorization %q", leader.requests()-before, leader.auths[len(leader.auths)-1])
	}
	// A member learned from a member's /status is followed too.
	via := newFakeListing(t, leader.addr, redirect(leader.addr, leader.addr))
	c = newClient(t, []string{via.addr}, client.WithToken(token))
	if _, err := c.Set(ctxT(t, 5*time.Second), "k", "v"); err != nil {
		t.Fatalf("set through a redirect to a member listed in /status: %v", err)
	}
	if foreign.requests() != 0 {
		t.Fatalf("the stranger got %d requests", foreign.requests())
	}
}

// New checks its addresses and options.
func TestNewRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		opts  []client.Option
	}{
		{nil, nil},
		{[]string{"http://127.0.0.1:6000"}, nil},
		{[]string{"127.0.0.1"}, nil},
		{[]string{"127.0.0.1:6000"}, []client.Option{client.WithToken("  ")}},
		{[]string{"127.0.0.1:6000"}, []client.Option{client.WithTokenFile("/nonexistent")}},
		{[]string{"127.0.0.1:6000"}, []client.Option{client.WithCA("/nonexistent")}},
		{[]string{"127.0.0.1:6000"}, []client.Option{client.WithReadTimeout(0)}},
	} {
		if _, err := client.New(tc.addrs, tc.opts...); err == nil {
			t.Fatalf("New(%v, %d options): no error", tc.addrs, len(tc.opts))
		}
	}
}

// A stale read whose member answers 5xx or hangs goes to the next.
func TestStaleReadFallsOver(t *testing.T) {
	var hung atomic.Int32
	slow := newFake(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		<-r.Context().Done()
	})
	broken := newFake(t, reply(500, "internal error\n"))
	good := newFake(t, reply(200, "v\n"))
	c := newClient(t, []string{slow.addr, closedAddr(t), broken.addr, good.addr}, client.WithReadTimeout(200*time.Millisecond))
	for range 2 {
		v, err := c.Get(ctxT(t, 5*time.Second), "k")
		if err != nil || v != "v" {
			t.Fatalf("get: %q, %v", v, err)
		}
	}
	if hung.Load() != 1 {
		t.Fatalf("the hung member was asked %d times, want once (then left)", hung.Load())
	}
}
