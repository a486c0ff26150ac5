package main

// raftSink: where hashicorp/raft's and raft-boltdb's metrics go, through
// go-metrics' global. It makes the series go-metrics' own Prometheus sink
// makes (the same names, labels, types, summary objectives and expiry), at
// a fraction of its cost per call.

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
)

// raftSink implements go-metrics' MetricSink and is a prometheus.Collector.
//
// Why not go-metrics' PrometheusSink: raft and raft-boltdb report 20 to 30
// samples per log entry on the leader, and that sink spends about 1–2 µs on
// each (it joins and rewrites the name into a fresh string, looks it up in a
// sync.Map keyed by that string, and stores a fresh copy of its record on
// every call). At one writer that was 3–5% of the leader's CPU (issue 20).
// Here a series is found by a hash of its name parts and labels, without
// building its name, and updated in place.
//
// Safe for concurrent use: mu guards the index; a series' Prometheus metric
// is itself safe for concurrent use, and its update time is atomic.
type raftSink struct {
	expiry time.Duration    // a series not updated for this long leaves /metrics (0: never)
	now    func() time.Time // a field so that tests can move time
	seed   maphash.Seed

	mu     sync.RWMutex
	series map[uint64][]*sinkSeries // by sinkKey; more than one only on a hash collision
}

type sinkKind uint8

const (
	sinkGauge sinkKind = iota
	sinkCounter
	sinkSummary
)

// sinkSeries is one metric: a name and label set of one kind.
type sinkSeries struct {
	kind    sinkKind
	parts   []string          // the name's parts, as given: to tell collisions apart
	labels  []gometrics.Label // likewise
	metric  prometheus.Metric // a Gauge, Counter or Summary (all Collectors too)
	update  func(float64)
	updated atomic.Int64 // Unix nanoseconds of the last update
}

func newRaftSink(expiry time.Duration) *raftSink {
	return &raftSink{expiry: expiry, now: time.Now, seed: maphash.MakeSeed(), series: map[uint64][]*sinkSeries{}}
}

// summaryObjectives are go-metrics' PrometheusSink's, so quantiles read the same.
var summaryObjectives = map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001}

// nameReplacer makes a Prometheus name of go-metrics' parts, as its
// PrometheusSink does.
var nameReplacer = strings.NewReplacer(" ", "_", ".", "_", "=", "_", "-", "_", "/", "_")

func (s *raftSink) key(kind sinkKind, parts []string, labels []gometrics.Label) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteByte(byte(kind))
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte(0)
	}
	for _, l := range labels {
		h.WriteByte(1)
		h.WriteString(l.Name)
		h.WriteByte(0)
		h.WriteString(l.Value)
	}
	return h.Sum64()
}

func (x *sinkSeries) is(kind sinkKind, parts []string, labels []gometrics.Label) bool {
	if x.kind != kind || len(x.parts) != len(parts) || len(x.labels) != len(labels) {
		return false
	}
	for i := range parts {
		if x.parts[i] != parts[i] {
			return false
		}
	}
	for i := range labels {
		if x.labels[i] != labels[i] {
			return false
		}
	}
	return true
}

// record updates the series, creating it on its first sample.
func (s *raftSink) record(kind sinkKind, parts []string, labels []gometrics.Label, val float32) {
	k := s.key(kind, parts, labels)
	s.mu.RLock()
	var found *sinkSeries
	for _, x := range s.series[k] {
		if x.is(kind, parts, labels) {
			found = x
			break
		}
	}
	s.mu.RUnlock()
	if found == nil {
		found = s.create(k, kind, parts, labels)
	}
	found.update(float64(val))
	found.updated.Store(s.now().UnixNano())
}

func (s *raftSink) create(k uint64, kind sinkKind, parts []string, labels []gometrics.Label) *sinkSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.series[k] {
		if x.is(kind, parts, labels) {
			return x // another caller made it meanwhile
		}
	}
	name := nameReplacer.Replace(strings.Join(parts, "_"))
	constLabels := prometheus.Labels{}
	for _, l := range labels {
		constLabels[l.Name] = l.Value
	}
	x := &sinkSeries{kind: kind, parts: append([]string(nil), parts...), labels: append([]gometrics.Label(nil), labels...)}
	switch kind {
	case sinkGauge:
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name, ConstLabels: constLabels})
		x.metric, x.update = g, g.Set
	case sinkCounter:
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: name, ConstLabels: constLabels})
		x.metric = c
		x.update = func(v float64) {
			if v >= 0 { // Counter.Add panics on a negative value; raft sends none
				c.Add(v)
			}
		}
	case sinkSummary:
		sm := prometheus.NewSummary(prometheus.SummaryOpts{Name: name, Help: name, ConstLabels: constLabels,
			MaxAge: 10 * time.Second, Objectives: summaryObjectives})
		x.metric, x.update = sm, sm.Observe
	}
	s.series[k] = append(s.series[k], x)
	return x
}

// The MetricSink methods. Labels may be nil.

func (s *raftSink) SetGauge(key []string, val float32) { s.record(sinkGauge, key, nil, val) }
func (s *raftSink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.record(sinkGauge, key, labels, val)
}
func (s *raftSink) EmitKey(key []string, val float32)     {} // as PrometheusSink: no such type
func (s *raftSink) IncrCounter(key []string, val float32) { s.record(sinkCounter, key, nil, val) }
func (s *raftSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.record(sinkCounter, key, labels, val)
}
func (s *raftSink) AddSample(key []string, val float32) { s.record(sinkSummary, key, nil, val) }
func (s *raftSink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.record(sinkSummary, key, labels, val)
}

// Describe describes nothing: the series come and go, so the registry
// treats the sink as an unchecked collector.
func (s *raftSink) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series updated within the expiry and forgets the rest.
// It sends with no lock held, and takes the write lock only when a series
// has expired: /metrics is open to anyone, and raft's goroutines record
// through the same lock.
func (s *raftSink) Collect(ch chan<- prometheus.Metric) {
	cutoff := s.now().Add(-s.expiry).UnixNano()
	fresh := func(x *sinkSeries) bool { return s.expiry == 0 || x.updated.Load() >= cutoff }
	var live []prometheus.Metric
	expired := false
	s.mu.RLock()
	for _, xs := range s.series {
		for _, x := range xs {
			if fresh(x) {
				live = append(live, x.metric)
			} else {
				expired = true
			}
		}
	}
	s.mu.RUnlock()
	if expired {
		s.mu.Lock()
		for k, xs := range s.series {
			kept := xs[:0]
			for _, x := range xs {
				if fresh(x) {
					kept = append(kept, x)
				}
			}
			if len(kept) == 0 {
				delete(s.series, k)
			} else {
				s.series[k] = kept
			}
		}
		s.mu.Unlock()
	}
	for _, m := range live {
		ch <- m
	}
}
