package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Bodies and status codes of the contract, against one real node.
func TestHTTPContract(t *testing.T) {
	p := newProc(t, "solo")
	p.start("-bootstrap")
	waitFor(t, 20*time.Second, "solo leader", func() error {
		s, err := p.status()
		if err == nil && !s.Writable {
			err = fmt.Errorf("not writable")
		}
		return err
	})
	bigKey := strings.Repeat("k", maxKeyBytes+1)
	cases := []struct {
		path string
		code int
		body string
	}{
		{"/set?key=ping&value=pong", 200, "ok\n"},
		{"/get?key=ping", 200, "pong\n"},
		{"/get?key=ping&consistency=stale", 200, "pong\n"},
		{"/get?key=ping&consistency=strong", 200, "pong\n"},
		{"/get?key=absent", 404, "\n"},
		{"/get?key=absent&consistency=strong", 404, "\n"},
		{"/get", 400, "param error\n"},
		{"/get?key=", 400, "param error\n"},
		{"/get?key=ping&consistency=eventual", 400, "param error: consistency must be stale or strong\n"},
		{"/set?key=a", 400, "param error\n"},
		{"/set?value=a", 400, "param error\n"},
		{"/set?key=a&value=", 400, "param error\n"},
		{"/set?key=%FF&value=a", 400, "param error\n"},    // invalid UTF-8
		{"/set?key=a&value=%C3%28", 400, "param error\n"}, // invalid UTF-8
		{"/set?key=%00x&value=a", 400, "param error\n"},   // reserved
		{"/set?key=a&value=%zz", 400, "param error\n"},    // bad escape
		{"/set?key=" + bigKey + "&value=a", 413, "key too large\n"},
		{"/set?key=sp%20ace&value=%E2%9C%93%20%26%3D", 200, "ok\n"},
		{"/get?key=sp%20ace", 200, "✓ &=\n"},
		{"/delete?key=ping", 200, "ok\n"},
		{"/delete?key=ping", 200, "ok\n"}, // absent key too
		{"/get?key=ping", 404, "\n"},
		{"/delete", 400, "param error\n"},
		{"/join", 400, "invalid peerAddress\n"},
		{"/join?peerAddress=127.0.0.1", 400, "invalid peerAddress\n"},
		{"/join?peerAddress=:7000", 400, "invalid peerAddress\n"},
		{"/join?peerAddress=host:port", 400, "invalid peerAddress\n"},
		{"/join?peerAddress=127.0.0.1:99999", 400, "invalid peerAddress\n"},
		{"/join?peerAddress=127.0.0.1:7000&httpAddress=nope", 400, "invalid httpAddress\n"},
		{"/join?peerAddress=" + p.raft, 200, "ok"}, // already a voter: ok
		{"/leave?peerAddress=x", 400, "invalid peerAddress\n"},
		{"/leave?peerAddress=127.0.0.1:1", 200, "ok"}, // not a member: ok
	}
	for _, c := range cases {
		p.expect(c.path, c.code, c.body)
	}

	// A voter nothing listens on is refused before it reaches the config.
	r := p.get("/join?peerAddress=" + freeAddr(t))
	if r.code != 502 || !strings.HasPrefix(r.body, "internal error: peer unreachable") {
		t.Fatalf("unreachable join: %d %q", r.code, r.body)
	}
	if s, _ := p.status(); len(s.Servers) != 1 {
		t.Fatalf("servers after bad joins: %+v", s.Servers)
	}

	// POST form bodies carry large values; over the limit is 413.
	post := func(path, body string) reply {
		resp, err := httpClient.Post("http://"+p.http+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = fmt.Fprint(b, readAll(t, resp))
		return reply{code: resp.StatusCode, body: b.String()}
	}
	big := strings.Repeat("v", maxValueBytes)
	if r := post("/set", url.Values{"key": {"big"}, "value": {big}}.Encode()); r.code != 200 || r.body != "ok\n" {
		t.Fatalf("POST 1 MiB value: %d %q", r.code, r.body)
	}
	if r := p.get("/get?key=big"); r.code != 200 || r.body != big+"\n" {
		t.Fatalf("get big: %d, %d bytes", r.code, len(r.body))
	}
	if r := post("/set", url.Values{"key": {"big"}, "value": {big + "v"}}.Encode()); r.code != 413 || r.body != "value too large\n" {
		t.Fatalf("POST value over 1 MiB: %d %q", r.code, r.body)
	}
	if r := post("/set", "key=x&value="+strings.Repeat("%41", maxFormBody/3+10)); r.code != 413 {
		t.Fatalf("POST body over the limit: %d %q", r.code, r.body)
	}
	if r := post("/delete", "key=big"); r.code != 200 || r.body != "ok\n" {
		t.Fatalf("POST delete: %d %q", r.code, r.body)
	}
	// A value too large for a URL gets the server's 431.
	if r := p.get("/set?key=k&value=" + strings.Repeat("v", 2<<20)); r.code != 431 {
		t.Fatalf("huge query: %d", r.code)
	}
	for _, m := range []string{http.MethodPut, http.MethodHead, http.MethodDelete} {
		req, _ := http.NewRequest(m, "http://"+p.http+"/set?key=a&value=b", nil)
		if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != 405 {
			t.Fatalf("%s /set: %v %v", m, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	p.expect("/get?key=a", 404, "\n") // none of them wrote
	// Still alive and consistent after all that.
	p.expect("/get?key=sp%20ace&consistency=strong", 200, "✓ &=\n")
}

// A client that trickles a body, a byte a second, is cut off within the
// bound: whether the handler reads the body (408) or answers without it (a
// 401, or a 405 to a chunked body: net/http reads up to 256 KiB of an unread
// body before it answers). Other requests are answered all the while.
func TestHTTPSlowBodyCutOff(t *testing.T) {
	const bound = 1500 * time.Millisecond // between two trickled bytes, so the close rarely meets one
	ms := &memStore{m: map[string]string{"k": "v"}}
	ts := httptest.NewServer(limitBody(newHandler(ms, newHub("n1"), hclog.NewNullLogger(), security{token: testToken}, nil), bound))
	defer ts.Close()
	addr := ts.Listener.Addr().String()
	form := "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n"
	auth := "Authorization: Bearer " + testToken + "\r\n"
	cases := []struct {
		name, head, chunk, want string
	}{
		{"read by the handler", "POST /set HTTP/1.1\r\n" + auth + form, "a", "HTTP/1.1 408 Request Timeout\r\n"},
		{"unread, before a 401", "POST /set HTTP/1.1\r\n" + form, "a", "HTTP/1.1 401 Unauthorized\r\n"},
		{"unread and chunked, before a 405", "POST /status HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", "1\r\na\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := fmt.Fprintf(conn, "%sHost: %s\r\n\r\n", c.head, addr); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					if _, err := io.WriteString(conn, c.chunk); err != nil {
						return // cut off
					}
					select {
					case <-tick.C:
					case <-stop:
						return
					}
				}
			}()
			// Meanwhile the server answers others.
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/get?key=k", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			if r, err := exchange(httpClient, req); err != nil || r.code != 200 || r.body != "v\n" {
				t.Fatalf("a get during the trickle: %v %d %q", err, r.code, r.body)
			}
			// The answer, then the end of the connection, within the bound.
			// A byte trickled after the server stopped reading makes its
			// close a reset: that ends the connection too.
			_ = conn.SetReadDeadline(start.Add(bound + 3*time.Second))
			got, err := io.ReadAll(conn)
			took := time.Since(start)
			if errors.Is(err, syscall.ECONNRESET) {
				err = nil
			}
			if err != nil || !strings.HasPrefix(string(got), c.want) {
				t.Fatalf("after %v: %v, got %q; want %q and the connection closed", took.Round(time.Millisecond), err, got, c.want)
			}
			t.Logf("cut off after %v: %q", took.Round(time.Millisecond), strings.SplitN(string(got), "\r\n", 2)[0])
		})
	}
	// A body sent at once is still welcome.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/set", strings.NewReader("key=k&value=w"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testToken)
	if r, err := exchange(httpClient, req); err != nil || r.code != 200 || r.body != "ok\n" {
		t.Fatalf("POST after the trickles: %v %d %q", err, r.code, r.body)
	}
}

func readAll(t testing.TB, resp *http.Response) string {
	b := new(strings.Builder)
	if _, err := fmt.Fprint(b, ""); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// memStore is a store for fuzzing the request parsing without Raft: what is
// fuzzed is the HTTP layer, and it must answer every input without panicking.
type memStore struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memStore) Set(k, v string, _ time.Duration) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return 1, nil
}
func (s *memStore) Delete(k string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return 1, nil
}
func (s *memStore) Get(k string, strong bool) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strong && k == "refuse" {
		return "", false, &refusal{LeaderHTTP: "127.0.0.1:1"}
	}
	v, ok := s.m[k]
	return v, ok, nil
}
func (s *memStore) Join(r, h string, fresh bool) (uint64, error) { return 0, nil }
func (s *memStore) Leave(r string) (uint64, error)               { return 0, &refusal{} }
func (s *memStore) Status() status                               { return status{} }
func (s *memStore) Members() []server                            { return nil }
func (s *memStore) Lab() *lab                                    { return nil }
func (s *memStore) TransferLeadership(string) error              { return nil }
func (s *memStore) SnapshotNow() (bool, error)                   { return false, nil }
func (s *memStore) Log(_, _ uint64, head func(first, last uint64), _ func(logEntry) error) error {
	head(0, 0)
	return nil
}

func FuzzHTTPRequest(f *testing.F) {
	const token = "0123456789abcdef-fuzz"
	f.Add("GET", "/set", "key=a&value=b", "", "")
	f.Add("POST", "/set", "", "key=a&value=b", "Bearer "+token)
	f.Add("GET", "/get", "key=refuse&consistency=strong", "", "bearer "+token)
	f.Add("GET", "/join", "peerAddress=127.0.0.1:7000&httpAddress=[::1]:1", "", "Basic "+token)
	f.Add("GET", "/leave", "peerAddress=%zz", "", "Bearer")
	f.Add("POST", "/delete", "key=%00", "key=x&key=y", "Bearer  "+token+" ")
	f.Add("OPTIONS", "/set", "", "", "")
	f.Add("GET", "/set", "key=a&value=b&ttl=1s", "", "")
	f.Add("POST", "/set", "ttl=90m", "key=a&value=b&ttl=-1h", "")
	open := newHandler(&memStore{m: map[string]string{}}, newHub("fuzz"), hclog.NewNullLogger(), security{}, nil)
	guarded := newHandler(&memStore{m: map[string]string{}}, newHub("fuzz"), hclog.NewNullLogger(), security{token: token, https: true}, nil)
	f.Fuzz(func(t *testing.T, method, path, query, body, auth string) {
		u := &url.URL{Path: path, RawQuery: query}
		for _, h := range []http.Handler{open, guarded} {
			req, err := http.NewRequest(method, "http://x"+u.EscapedPath()+"?"+query, strings.NewReader(body))
			if err != nil {
				return // net/http would not deliver such a request either
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			code := w.Code
			if code == 200 {
				// Success only for well-formed requests of the known paths.
				p := req.URL.Path
				if method == "POST" && p != "/set" && p != "/delete" {
					t.Fatalf("%s %s: 200", method, p)
				}
			}
			if code >= 500 {
				t.Fatalf("%s %s?%s: %d %q", method, path, query, code, w.Body.String())
			}
			// With a token, a guarded endpoint answers 401 unless the
			// request carries it (an OPTIONS preflight carries nothing
			// and executes nothing).
			scheme, given, _ := strings.Cut(auth, " ")
			authorised := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(given) == token
			switch req.URL.Path {
			case "/set", "/get", "/delete", "/join", "/leave":
				if h == guarded && !authorised && method != "OPTIONS" && code != 401 {
					t.Fatalf("%s %s with Authorization %q: %d, want 401", method, req.URL.Path, auth, code)
				}
				if code == 401 && (h == open || authorised) {
					t.Fatalf("%s %s with Authorization %q: 401", method, req.URL.Path, auth)
				}
			}
		}
	})
}

// getParams is url.ParseQuery plus Values.Get for /get's two parameters,
// without the map: same verdict, same values, for any query.
func FuzzGetParams(f *testing.F) {
	for _, q := range []string{"", "key=a", "key=a&key=b", "k%65y=x&consistency=strong", "key=%zz", "a;b=c&key=1",
		"&&key=+x+&consistency=&consistency=strong", "key", "=v&key=%41%42", "key=a%", strings.Repeat("&", 10001)} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		key, cons, ok := getParams(raw)
		v, err := url.ParseQuery(raw)
		if ok != (err == nil) {
			t.Fatalf("%q: getParams ok=%v, ParseQuery err=%v", raw, ok, err)
		}
		if ok && (key != v.Get("key") || cons != v.Get("consistency")) {
			t.Fatalf("%q: getParams (%q, %q), ParseQuery (%q, %q)", raw, key, cons, v.Get("key"), v.Get("consistency"))
		}
	})
}
