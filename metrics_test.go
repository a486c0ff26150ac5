package main

import (
	"fmt"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads p's /metrics with Prometheus' own parser.
func scrape(t *testing.T, p *proc) map[string]*dto.MetricFamily {
	t.Helper()
	r := p.get("/metrics")
	if r.code != 200 {
		t.Fatalf("%s /metrics: %d", p.name, r.code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", p.name, err)
	}
	return fams
}

// value is the sum of a family's counters, gauges or untyped values, or of
// its summaries' and histograms' counts, over the series whose labels
// include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Summary != nil:
			sum += float64(m.Summary.GetSampleCount())
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// /metrics on a real cluster: raft's and raft-boltdb's own families, the Go
// and process collectors, and ours; raft's apply counter grows with writes;
// the request counter files a 307 and a 400 under the right labels.
func TestMetrics(t *testing.T) {
	c := startCluster(t, 3, func(i int, p *proc) {
		if i == 0 {
			p.base = []string{"-pprof"}
		}
	})
	l := c.leader()
	f := c.followers()[0]
	l.expect("/set?key=a&value=1", 200, "ok\n")
	before := scrape(t, l)
	for _, name := range []string{"stcache_raft_apply", "stcache_raft_commitTime", "stcache_raft_fsm_apply",
		"stcache_raft_boltdb_storeLogs", "stcache_raft_boltdb_numFreePages", "stcache_http_requests_total",
		"stcache_http_request_duration_seconds", "stcache_commit_batch_writes", "stcache_cache_bytes",
		"go_goroutines", "process_resident_memory_bytes"} {
		if before[name] == nil {
			t.Errorf("no %s on the leader", name)
		}
	}
	for name := range before {
		if strings.Contains(name, "stcache_stcache") || strings.HasPrefix(name, "stcache_") && strings.Contains(name, "local") {
			t.Errorf("odd family %s (hostname or doubled prefix in the name?)", name)
		}
	}
	applied := value(before, "stcache_raft_apply", nil)
	for i := range 5 {
		l.expect(fmt.Sprintf("/set?key=k%d&value=v", i), 200, "ok\n")
	}
	after := scrape(t, l)
	if got := value(after, "stcache_raft_apply", nil); got < applied+5 {
		t.Fatalf("stcache_raft_apply %v -> %v after 5 writes", applied, got)
	}
	if got := value(after, "stcache_cache_bytes", nil); got != 2+5*3 {
		t.Fatalf("stcache_cache_bytes %v, want 17", got)
	}
	if got := value(after, "stcache_commit_batch_writes", nil); got < 6 {
		t.Fatalf("stcache_commit_batch_writes count %v, want 6 entries or more", got)
	}

	fb := scrape(t, f)
	r307 := value(fb, "stcache_http_requests_total", map[string]string{"endpoint": "/set", "code": "307"})
	r400 := value(fb, "stcache_http_requests_total", map[string]string{"endpoint": "/set", "code": "400"})
	f.expect("/set?key=x&value=y", 307, "write method not allowed\n")
	f.expect("/set?key=", 400, "param error\n")
	fa := scrape(t, f)
	if got := value(fa, "stcache_http_requests_total", map[string]string{"endpoint": "/set", "code": "307"}); got != max(r307, 0)+1 {
		t.Fatalf("307 counter %v -> %v", r307, got)
	}
	if got := value(fa, "stcache_http_requests_total", map[string]string{"endpoint": "/set", "code": "400"}); got != max(r400, 0)+1 {
		t.Fatalf("400 counter %v -> %v", r400, got)
	}
	if got := value(fa, "stcache_http_request_duration_seconds", map[string]string{"endpoint": "/set"}); got < 2 {
		t.Fatalf("/set duration count %v", got)
	}
	// -pprof serves the profiler; without it there is none.
	pp := c.nodes[0]
	if r := pp.get("/debug/pprof/"); r.code != 200 || !strings.Contains(r.body, "goroutine") {
		t.Fatalf("-pprof: /debug/pprof/ %d", r.code)
	}
	if r := c.nodes[1].get("/debug/pprof/"); r.code != 404 {
		t.Fatalf("without -pprof: /debug/pprof/ %d", r.code)
	}
}
