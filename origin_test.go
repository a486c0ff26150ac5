package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// originStore is a memStore whose cluster has two members with host names,
// so the Host and Origin checks have something to compare with.
type originStore struct{ memStore }

func (*originStore) Members() []server {
	return []server{
		{ID: "127.0.0.1:7000", Address: "127.0.0.1:7000", HTTP: "127.0.0.1:6000"},
		{ID: "db2.example:7001", Address: "db2.example:7001", HTTP: "db2.example:6001"},
	}
}

// TestHostAndCrossSiteChecks drives the handler as a browser would: a page
// on a stranger's site (an <img>, a form, a fetch), a DNS-rebound name, and
// the members' own pages.
func TestHostAndCrossSiteChecks(t *testing.T) {
	const token = "0123456789abcdef-origin"
	st := &originStore{memStore{m: map[string]string{}}}
	pol := newOriginPolicy([]string{"127.0.0.1:6000", "node1.internal:7000"}, []string{"http://lab.example:8080"}, st.Members)
	open := newHandler(st, newHub("127.0.0.1:7000"), hclog.NewNullLogger(), security{origin: pol}, nil)
	guarded := newHandler(st, newHub("127.0.0.1:7000"), hclog.NewNullLogger(), security{origin: pol, token: token}, nil)

	do := func(h http.Handler, method, target, host string, hdr map[string]string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(method, target, nil)
		r.Host = host
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const host = "127.0.0.1:6000"
	for _, tc := range []struct {
		name, method, target, host string
		hdr                        map[string]string
		code                       int
		body                       string
	}{
		// DNS rebinding: the attacker's name, now resolving to 127.0.0.1.
		{"rebound name, status", "GET", "/status", "attacker.example:6000", nil, 403, "forbidden: unknown host\n"},
		{"rebound name, get", "GET", "/get?key=a", "attacker.example", nil, 403, "forbidden: unknown host\n"},
		{"rebound name, events", "GET", "/events", "attacker.example:6000", nil, 403, "forbidden: unknown host\n"},
		{"rebound name, ui", "GET", "/ui/", "attacker.example:6000", nil, 403, "forbidden: unknown host\n"},
		{"rebound name, set", "GET", "/set?key=a&value=b", "ATTACKER.example:6000", nil, 403, "forbidden: unknown host\n"},
		{"IP literal", "GET", "/set?key=ip&value=1", "127.0.0.1:6000", nil, 200, "ok\n"},
		{"IPv6 literal", "GET", "/set?key=ip6&value=1", "[::1]:6000", nil, 200, "ok\n"},
		{"localhost", "GET", "/set?key=lh&value=1", "localhost:6000", nil, 200, "ok\n"},
		{"own name", "GET", "/set?key=own&value=1", "Node1.Internal:6000", nil, 200, "ok\n"},
		{"a member's name", "GET", "/set?key=member&value=1", "db2.example:6001", nil, 200, "ok\n"},
		{"no Host (HTTP/1.0)", "GET", "/set?key=nohost&value=1", "", nil, 200, "ok\n"},
		// A stranger's page: <img src=.../join?...>, a form, a fetch.
		{"img join", "GET", "/join?peerAddress=attacker.example:7000", host, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "forbidden: cross-site request\n"},
		{"img leave", "GET", "/leave?peerAddress=127.0.0.1:7000", host, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "forbidden: cross-site request\n"},
		{"form set", "POST", "/set?key=x&value=y", host, map[string]string{"Origin": "https://attacker.example"}, 403, "forbidden: cross-site request\n"},
		{"fetch delete", "GET", "/delete?key=ip", host, map[string]string{"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"}, 403, "forbidden: cross-site request\n"},
		{"sandboxed frame", "GET", "/set?key=x&value=y", host, map[string]string{"Origin": "null"}, 403, "forbidden: cross-site request\n"},
		{"cross-site even from a member's origin", "GET", "/set?key=x&value=y", host, map[string]string{"Origin": "http://db2.example:6001", "Sec-Fetch-Site": "cross-site"}, 403, "forbidden: cross-site request\n"},
		// Reads need no cross-site check: the browser does not let the page read the answer.
		{"cross-site status", "GET", "/status", host, map[string]string{"Sec-Fetch-Site": "cross-site"}, 200, ""},
		// The members' pages and an allowed origin.
		{"own page", "GET", "/set?key=page&value=1", host, map[string]string{"Origin": "http://127.0.0.1:6000", "Sec-Fetch-Site": "same-origin"}, 200, "ok\n"},
		{"member's page", "GET", "/set?key=page2&value=1", host, map[string]string{"Origin": "http://db2.example:6001", "Sec-Fetch-Site": "same-site"}, 200, "ok\n"},
		{"allowed origin", "GET", "/set?key=lab&value=1", host, map[string]string{"Origin": "http://lab.example:8080"}, 200, "ok\n"},
		{"wrong port of a member", "GET", "/set?key=x&value=y", host, map[string]string{"Origin": "http://127.0.0.1:6666"}, 403, "forbidden: cross-site request\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(open, tc.method, tc.target, tc.host, tc.hdr)
			if w.Code != tc.code || (tc.body != "" && w.Body.String() != tc.body) {
				t.Fatalf("%s %s (Host %q, %v) = %d %q, want %d %q", tc.method, tc.target, tc.host, tc.hdr, w.Code, w.Body.String(), tc.code, tc.body)
			}
		})
	}
	for _, k := range []string{"x", "attacker"} {
		if _, ok := st.m[k]; ok {
			t.Fatalf("a refused request wrote key %q", k)
		}
	}
	if _, ok := st.m["ip"]; !ok {
		t.Fatal("a cross-site delete executed")
	}

	t.Run("order: Host, token, cross-site", func(t *testing.T) {
		evil := map[string]string{"Origin": "http://attacker.example"}
		if w := do(guarded, "GET", "/set?key=x&value=y", "attacker.example:6000", evil); w.Code != 403 || w.Body.String() != "forbidden: unknown host\n" {
			t.Fatalf("unknown host without token: %d %q, want the Host check first", w.Code, w.Body.String())
		}
		if w := do(guarded, "GET", "/set?key=x&value=y", host, evil); w.Code != 401 {
			t.Fatalf("cross-site without token: %d %q, want 401 first", w.Code, w.Body.String())
		}
		evil["Authorization"] = "Bearer " + token
		if w := do(guarded, "GET", "/set", host, evil); w.Code != 403 || w.Body.String() != "forbidden: cross-site request\n" {
			t.Fatalf("cross-site with token and no parameters: %d %q, want 403 before 400", w.Code, w.Body.String())
		}
	})

	t.Run("CORS names origins, never *", func(t *testing.T) {
		for _, path := range []string{"/set?key=c&value=1", "/events"} {
			for origin, want := range map[string]string{
				"http://db2.example:6001": "http://db2.example:6001",
				"http://lab.example:8080": "http://lab.example:8080",
				"http://attacker.example": "",
			} {
				method := "OPTIONS"
				if path == "/events" {
					method = "HEAD" // the stream never ends; its headers are what counts
				}
				w := do(open, method, path, host, map[string]string{"Origin": origin, "Access-Control-Request-Method": "GET"})
				if got := w.Header().Get("Access-Control-Allow-Origin"); got != want {
					t.Errorf("%s %s from %s: Access-Control-Allow-Origin %q, want %q", method, path, origin, got, want)
				}
				if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
					t.Errorf("%s %s: no Vary: Origin", method, path)
				}
			}
		}
	})

	t.Run("the page's own headers", func(t *testing.T) {
		w := do(open, "GET", "/ui/", host, nil)
		csp := w.Header().Get("Content-Security-Policy")
		if w.Code != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("/ui/: %d, Content-Security-Policy %q", w.Code, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatal("/ui/ without X-Content-Type-Options: nosniff")
		}
	})
}

func TestParseAllowOrigins(t *testing.T) {
	got, err := parseAllowOrigins(" http://127.0.0.1:8080, HTTPS://Lab.Example ")
	if err != nil || strings.Join(got, " ") != "http://127.0.0.1:8080 https://lab.example" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.1:8080", "ftp://x", "http://x/path", "http://", "http://x?q=1"} {
		if _, err := parseAllowOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
