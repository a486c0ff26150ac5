package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// What a browser that cannot reach one member (a refused port, a network it
// cannot cross) gets from another, on a real cluster: that member's event
// stream relayed, and a write forwarded to the leader; and what a stranger's
// page gets: nothing changed.
func TestRelayForwardAndCrossSite(t *testing.T) {
	c := startCluster(t, 3, nil)
	l := c.leader()
	f := c.followers()[0]

	t.Run("a member's stream through another", func(t *testing.T) {
		s := subscribeURL(t, "relay of "+l.name, "http://"+f.http+"/events?node="+url.QueryEscape(l.raftAdv))
		st := s.next(5*time.Second, "the leader's own status", func(e sseEvent) bool { return e.typ == "status" })
		if st.str("node") != l.raftAdv || st.str("name") != l.name || st.str("state") != "Leader" {
			t.Fatalf("relayed status %v, want the leader's own", st.data)
		}
		if got := s.header.Get("X-Relayed-From"); got != l.http {
			t.Fatalf("X-Relayed-From %q, want %q", got, l.http)
		}
		// Live, not a copy: a write moves the leader's indices in it.
		r := l.expect("/set?key=relayed&value=1", 200, "ok\n")
		idx := r.header.Get("X-Raft-Index")
		s.next(5*time.Second, "progress to the write's index", func(e sseEvent) bool {
			return e.typ == "progress" && e.str("node") == l.raftAdv && idx != "" && e.num("commit_index") >= parseIndex(idx)
		})
		f.expect("/events?node=127.0.0.1:1", 400, "param error: no member has that server ID\n")
	})

	t.Run("a write forwarded to the leader", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+f.http+"/set", strings.NewReader("key=fwd&value=v+1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(forwardHeader, "leader")
		req.Header.Set("Origin", "http://"+f.http) // the page that follower served
		r, err := exchange(httpClient, req)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 200 || r.body != "ok\n" || parseIndex(r.header.Get("X-Raft-Index")) == 0 || r.header.Get("X-Raft-Leader") != l.http {
			t.Fatalf("forwarded set: %d %q %v", r.code, r.body, r.header)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "http://"+f.http {
			t.Fatalf("Access-Control-Allow-Origin %q", got)
		}
		l.expect("/get?key=fwd", 200, "v 1\n")
		// Without the header a follower still redirects, as in the contract.
		if r := f.get("/set?key=fwd&value=2"); r.code != 307 {
			t.Fatalf("plain set on a follower: %d, want 307", r.code)
		}
	})

	t.Run("a stranger's page changes nothing", func(t *testing.T) {
		before, err := l.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{
			"/join?peerAddress=127.0.0.1:1&httpAddress=evil.example:80",
			"/leave?peerAddress=" + f.raftAdv,
			"/set?key=fwd&value=evil",
			"/delete?key=fwd",
		} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+l.http+path, nil)
			req.Header.Set("Sec-Fetch-Site", "cross-site") // what an <img> on another site sends
			r, err := exchange(httpClient, req)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != 403 || r.body != "forbidden: cross-site request\n" {
				t.Fatalf("cross-site %s: %d %q", path, r.code, r.body)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+l.http+"/get?key=fwd", nil)
		req.Host = "rebound.attacker.example:" + strings.Split(l.http, ":")[1]
		if r, err := exchange(httpClient, req); err != nil || r.code != 403 || r.body != "forbidden: unknown host\n" {
			t.Fatalf("DNS-rebound read: %v %d %q", err, r.code, r.body)
		}
		after, err := l.status()
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Servers) != len(before.Servers) || after.CommitIndex != before.CommitIndex {
			t.Fatalf("refused requests changed the cluster: %v -> %v", before, after)
		}
		l.expect("/get?key=fwd", 200, "v 1\n")
	})

	t.Run("a dead member's relay fails fast", func(t *testing.T) {
		other := c.followers()[1]
		other.kill()
		start := time.Now()
		r := f.get("/events?node=" + url.QueryEscape(other.raftAdv))
		if r.code != 502 || time.Since(start) > 5*time.Second {
			t.Fatalf("relay of a killed member: %d %q after %v", r.code, r.body, time.Since(start))
		}
	})
}

func parseIndex(s string) uint64 {
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// A request for a named member, forwarded by the member the browser
// reaches: a read from node1 when only node2 is reachable.
func TestForwardToMember(t *testing.T) {
	c := startCluster(t, 2, nil)
	l := c.leader()
	f := c.followers()[0]
	l.expect("/set?key=k&value=v1", 200, "ok\n")
	waitValue(t, f, "k", "v1")
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.http+"/get?key=k&consistency=strong", nil)
	req.Header.Set(forwardHeader, l.raftAdv)
	r, err := exchange(httpClient, req)
	if err != nil || r.code != 200 || r.body != "v1\n" || r.header.Get("X-Relayed-From") != l.http {
		t.Fatalf("strong read forwarded to the leader: %v %d %q %v", err, r.code, r.body, r.header)
	}
	req.Header.Set(forwardHeader, "127.0.0.1:1")
	if r, err := exchange(httpClient, req); err != nil || r.code != 400 {
		t.Fatalf("forward to a stranger: %v %d %q", err, r.code, r.body)
	}
	// A write naming a member goes to that member, which answers as itself:
	// the leader writes; a follower named by the leader would refuse.
	req, _ = http.NewRequest(http.MethodGet, "http://"+f.http+"/set?key=k&value=v2", nil)
	req.Header.Set(forwardHeader, l.raftAdv)
	if r, err := exchange(httpClient, req); err != nil || r.code != 200 || r.header.Get("X-Raft-Index") == "" {
		t.Fatalf("set naming the leader: %v %d %q", err, r.code, r.body)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+l.http+"/set?key=k&value=v3", nil)
	req.Header.Set(forwardHeader, f.raftAdv)
	if r, err := exchange(httpClient, req); err != nil || r.code != 307 {
		t.Fatalf("set naming the follower: %v %d %q, want its 307", err, r.code, r.body)
	}
}
