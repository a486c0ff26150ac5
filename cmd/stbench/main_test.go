package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// The histogram's quantiles stay within 1% of the exact ones.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		all = append(all, d)
		h.record(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.01 || diff < -0.01 {
			t.Errorf("q%.2f: got %v, exact %v", q, got, exact)
		}
	}
	if h.max != all[len(all)-1] {
		t.Errorf("max %v, want %v", h.max, all[len(all)-1])
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if i := histIndex(v); histIndex(histValue(i)) != i {
			t.Fatalf("bucket %d of %d does not hold its own midpoint %d", i, v, histValue(i))
		}
	}
}

func TestParseWorkload(t *testing.T) {
	for name, want := range map[string]workload{
		"set1":      {"set1", "set", 1, 0},
		"strong64":  {"strong64", "strong", 64, 0},
		"mix16":     {"mix16", "mix", 16, 0},
		"set64~s10": {"set64~s10", "set", 64, 10},
	} {
		if got, err := parseWorkload(name); err != nil || got != want {
			t.Errorf("%s: got %+v, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "set", "set0", "get-1", "put8", "set1x", "set64~s", "set64~s65", "set64~x"} {
		if _, err := parseWorkload(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Each target's requests reach a server in its API's shape, with both
// clients, and a tutorial set counts only if the body says "ok".
func TestTargetRequests(t *testing.T) {
	type seen struct{ method, path, query, ctype, body string }
	for _, tc := range []struct {
		target, kind string
		want         seen
		answer       string // the body the fake server answers with
		ok           bool
	}{
		{targetStcache, "set", seen{"GET", "/set", "key=k7&value=00000001ijklmnop", "", ""}, "", true},
		{targetStcache, "get", seen{"GET", "/get", "key=k7", "", ""}, "v\n", true},
		{targetStcache, "strong", seen{"GET", "/get", "key=k7&consistency=strong", "", ""}, "v\n", true},
		{targetTutorial, "set", seen{"GET", "/set", "key=k7&value=00000001ijklmnop", "", ""}, "ok\n", true},
		{targetTutorial, "set", seen{"GET", "/set", "key=k7&value=00000001ijklmnop", "", ""}, "write method not allowed\n", false},
		{targetTutorial, "get", seen{"GET", "/get", "key=k7", "", ""}, "v\n", true},
		{targetHraftd, "set", seen{"POST", "/key", "", "application/json", `{"k7":"00000001ijklmnop"}`}, "", true},
		{targetHraftd, "get", seen{"GET", "/key/k7", "", "", ""}, `{"k7":"v"}`, true},
	} {
		for _, raw := range []bool{false, true} {
			var got seen
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b)}
				io.WriteString(w, tc.answer)
			}))
			cfg := &config{target: tc.target, raw: raw, valueSize: 16, preloadCon: 1}
			b, err := newBencher(cfg, strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			c := b.newClient(t.Context(), 1)
			c.do(tc.kind, 7)
			c.close()
			b.close()
			srv.Close()
			name := fmt.Sprintf("%s %s raw=%v answer %q", tc.target, tc.kind, raw, tc.answer)
			if got != tc.want {
				t.Errorf("%s: server saw %+v, want %+v", name, got, tc.want)
			}
			if ok := c.res.ok == 1; ok != tc.ok || c.res.netErrs != 0 {
				t.Errorf("%s: ok %d, http errors %d, transport errors %d (%s); want ok=%v",
					name, c.res.ok, c.res.httpErrs, c.res.netErrs, c.res.firstErr, tc.ok)
			}
		}
	}
}

// -client pkg sends through the client package: a set as a POST form, gets
// as GET; a refusal the package reports counts as an HTTP error.
func TestPkgRequests(t *testing.T) {
	type seen struct{ method, path, query, body string }
	for _, tc := range []struct {
		kind string
		want seen
		code int
	}{
		{"set", seen{"POST", "/set", "", "key=k7&value=00000001ijklmnop"}, 200},
		{"get", seen{"GET", "/get", "key=k7", ""}, 200},
		{"strong", seen{"GET", "/get", "key=k7&consistency=strong", ""}, 200},
		{"set", seen{"POST", "/set", "", "key=k7&value=00000001ijklmnop"}, 507},
	} {
		var got seen
		var addr string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/status" {
				fmt.Fprintf(w, `{"state":"Leader","writable":true,"member":true,"servers":[{"http":%q}]}`, addr)
				return
			}
			b, _ := io.ReadAll(r.Body)
			got = seen{r.Method, r.URL.Path, r.URL.RawQuery, string(b)}
			w.WriteHeader(tc.code)
			io.WriteString(w, "v\n")
		}))
		addr = strings.TrimPrefix(srv.URL, "http://")
		cfg := &config{target: targetStcache, pkg: true, valueSize: 16, preloadCon: 1}
		b, err := newBencher(cfg, addr)
		if err != nil {
			t.Fatal(err)
		}
		c := b.newClient(t.Context(), 1)
		c.do(tc.kind, 7)
		b.close()
		srv.Close()
		if got != tc.want {
			t.Errorf("%s: server saw %+v, want %+v", tc.kind, got, tc.want)
		}
		if wantOK := tc.code == 200; (c.res.ok == 1) != wantOK || (c.res.httpErrs == 1) == wantOK || c.res.netErrs != 0 {
			t.Errorf("%s answered %d: ok %d, http errors %d, transport errors %d (%s)", tc.kind, tc.code, c.res.ok, c.res.httpErrs, c.res.netErrs, c.res.firstErr)
		}
	}
}

// -results writes one JSON line per row with unrounded CPU per answered
// request, in the keys cmd/perfcheck reads (its TestReadResults).
func TestWriteResult(t *testing.T) {
	var b strings.Builder
	cpu := cpuSample{leader: 2 * time.Second, cluster: 3 * time.Second, self: 500 * time.Millisecond}
	if err := writeResult(&b, rowResult{Workload: "set64", Side: "b", Round: 2, LeaderChanged: true}, 6512.5, 30000, 2, cpu); err != nil {
		t.Fatal(err)
	}
	if err := writeResult(&b, rowResult{Workload: "get64"}, 100, 0, 0, cpuSample{}); err != nil {
		t.Fatal(err)
	}
	want := `{"workload":"set64","side":"b","round":2,"ops_per_sec":6512.5,"requests":30000,"errors":2,"leader_cpu_us":66.66666666666667,"cluster_cpu_us":100,"stbench_cpu_us":16.666666666666668,"leader_changed":true,"others_cpu":0}
{"workload":"get64","ops_per_sec":100,"requests":0,"errors":0,"leader_cpu_us":0,"cluster_cpu_us":0,"stbench_cpu_us":0,"leader_changed":false,"others_cpu":0}
`
	if b.String() != want {
		t.Errorf("got\n%swant\n%s", b.String(), want)
	}
}

// -versus compares two stcache binaries on the plain load only.
func TestVersusFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-versus", "./other", "-rounds", "3", "-versus-node-flags", "-log-store wal"})
	if err != nil || cfg.versus != "./other" || cfg.rounds != 3 || cfg.versusFlags != "-log-store wal" {
		t.Errorf("got %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"-versus-node-flags", "-log-store wal"},
		{"-versus", "x", "-scale"},
		{"-versus", "x", "-target", "hraftd"},
		{"-rounds", "0"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
