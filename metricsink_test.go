package main

import (
	"strings"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// sinkCalls are the kinds of calls raft and raft-boltdb make, with labels,
// repeats and names that need rewriting.
func sinkCalls(s gometrics.MetricSink) {
	peer := []gometrics.Label{{Name: "peer_id", Value: "127.0.0.1:7001"}}
	other := []gometrics.Label{{Name: "peer_id", Value: "127.0.0.1:7002"}}
	for i := range 300 {
		s.AddSample([]string{"stcache", "raft", "commitTime"}, float32(i%17)/10)
		s.AddSampleWithLabels([]string{"stcache", "raft", "replication", "appendEntries", "rpc"}, float32(i%5), peer)
		s.AddSampleWithLabels([]string{"stcache", "raft", "replication", "appendEntries", "rpc"}, float32(i%7), other)
		s.IncrCounter([]string{"stcache", "raft", "apply"}, 1)
		s.IncrCounterWithLabels([]string{"stcache", "raft", "replication", "appendEntries", "logs"}, 2, peer)
		s.SetGauge([]string{"stcache", "raft", "commitNumLogs"}, float32(i))
		s.SetGaugeWithLabels([]string{"stcache", "raft-boltdb", "numFreePages"}, 3, nil)
	}
	s.EmitKey([]string{"stcache", "ignored"}, 1)
}

func gatherText(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestRaftSinkMatchesPrometheusSink: /metrics shows what go-metrics' own
// Prometheus sink showed, series for series and value for value.
func TestRaftSinkMatchesPrometheusSink(t *testing.T) {
	theirs, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Expiration: time.Minute, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ours := newRaftSink(time.Minute)
	sinkCalls(theirs)
	sinkCalls(ours)
	want, got := gatherText(t, theirs), gatherText(t, ours)
	if got != want {
		t.Fatalf("raftSink's exposition differs from go-metrics' PrometheusSink's:\n--- ours\n%s\n--- theirs\n%s", got, want)
	}
	if !strings.Contains(got, `stcache_raft_replication_appendEntries_rpc{peer_id="127.0.0.1:7002",quantile="0.5"}`) ||
		!strings.Contains(got, "stcache_raft_boltdb_numFreePages 3") || !strings.Contains(got, "stcache_raft_apply 300") {
		t.Fatalf("missing series:\n%s", got)
	}
}

// TestRaftSinkExpiry: a series not updated within the expiry leaves, and
// comes back with its next sample.
func TestRaftSinkExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newRaftSink(5 * time.Minute)
	s.now = func() time.Time { return now }
	s.IncrCounter([]string{"stcache", "raft", "apply"}, 1)
	now = now.Add(4 * time.Minute)
	s.SetGauge([]string{"stcache", "raft", "commitNumLogs"}, 1)
	if got := gatherText(t, s); !strings.Contains(got, "raft_apply") || !strings.Contains(got, "commitNumLogs") {
		t.Fatalf("both series should be there after 4 min:\n%s", got)
	}
	now = now.Add(2 * time.Minute) // apply: 6 min old, commitNumLogs: 2 min
	got := gatherText(t, s)
	if strings.Contains(got, "raft_apply") || !strings.Contains(got, "commitNumLogs") {
		t.Fatalf("raft_apply should have expired, commitNumLogs not:\n%s", got)
	}
	s.IncrCounter([]string{"stcache", "raft", "apply"}, 1)
	if got := gatherText(t, s); !strings.Contains(got, "stcache_raft_apply 1") {
		t.Fatalf("raft_apply should be back, counting afresh:\n%s", got)
	}
}

// BenchmarkRaftSink against go-metrics' PrometheusSink, per call, as raft
// makes them (through go-metrics' global).
func BenchmarkRaftSink(b *testing.B) {
	theirs, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Expiration: time.Minute, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	peer := []gometrics.Label{{Name: "peer_id", Value: "127.0.0.1:7001"}}
	for _, sc := range []struct {
		name string
		sink gometrics.MetricSink
	}{{"raftSink", newRaftSink(time.Minute)}, {"PrometheusSink", theirs}} {
		b.Run(sc.name+"/counter", func(b *testing.B) {
			for range b.N {
				sc.sink.IncrCounter([]string{"stcache", "raft", "apply"}, 1)
			}
		})
		b.Run(sc.name+"/sample+label", func(b *testing.B) {
			for range b.N {
				sc.sink.AddSampleWithLabels([]string{"stcache", "raft", "replication", "appendEntries", "rpc"}, 0.5, peer)
			}
		})
	}
}
