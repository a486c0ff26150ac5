package main

// GET /metrics: Prometheus text format from one registry of our own holding
// hashicorp/raft's and raft-boltdb's metrics (through go-metrics, into
// raftSink), the Go runtime and process collectors, and stcache's own series.

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsExpiry is how long a go-metrics series (raft's, raft-boltdb's)
// stays on /metrics without an update: long enough that scrapes see steady
// series, short enough that a node's leader-only series (raft_apply,
// raft_commitTime, raft_replication_*) leave once it has stopped leading.
const metricsExpiry = 5 * time.Minute

// endpoints are the paths that get their own label; everything else is
// "other", so a scanner cannot grow the series without bound.
var endpoints = []string{"/set", "/get", "/delete", "/join", "/leave", "/status", "/events", "/metrics", "/ui", "other"}

// metrics is stcache's registry and its own series.
type metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	duration map[string]prometheus.Observer // by endpoint: resolved once
	batch    prometheus.Histogram

	// counters[endpoint][code-100] caches resolved counters: WithLabelValues
	// hashes its labels on every call, too slow for every request.
	counters map[string]*[500]atomic.Pointer[prometheus.Counter]
}

// newMetrics builds the registry and routes go-metrics (which raft and
// raft-boltdb report through, via its compat package) into it. It must run
// before the stores and Raft are opened, so their first series arrive.
func newMetrics() (*metrics, error) {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stcache_http_requests_total", Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stcache_commit_batch_writes", Help: "Writes per Raft log entry (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}),
		duration: map[string]prometheus.Observer{},
		counters: map[string]*[500]atomic.Pointer[prometheus.Counter]{},
	}
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stcache_http_request_duration_seconds", Help: "Time to answer an HTTP request, by endpoint (event streams excluded).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 100 µs .. 2.4 s
	}, []string{"endpoint"})
	for _, e := range endpoints {
		m.duration[e] = dur.WithLabelValues(e)
		m.counters[e] = new([500]atomic.Pointer[prometheus.Counter])
	}
	reg.MustRegister(m.requests, dur, m.batch,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sink := newRaftSink(metricsExpiry) // metricsink.go: go-metrics' PrometheusSink's series, cheaper
	reg.MustRegister(sink)
	conf := gometrics.DefaultConfig("stcache")
	conf.EnableHostname = false       // the hostname would be part of every gauge's name
	conf.EnableRuntimeMetrics = false // the Go collector reports the runtime
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		return nil, err
	}
	return m, nil
}

// watchCache adds the map's size as gauges, read at each scrape.
func (m *metrics) watchCache(bytes func() int64, keys func() int) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stcache_cache_bytes", Help: "Keys plus values held (-max-memory caps this plus 96 bytes per key)."},
			func() float64 { return float64(bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stcache_cache_keys", Help: "Keys held (expired ones until reaped)."},
			func() float64 { return float64(keys()) }),
	)
}

// handler serves the registry.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observeBatch is the committer's hook: how many writes one entry carried.
func (m *metrics) observeBatch(writes int) { m.batch.Observe(float64(writes)) }

// counter returns the request counter of endpoint and code, resolving it
// once.
func (m *metrics) counter(endpoint string, code int) prometheus.Counter {
	slots := m.counters[endpoint]
	if code < 100 || code > 599 {
		return m.requests.WithLabelValues(endpoint, strconv.Itoa(code))
	}
	if c := slots[code-100].Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(endpoint, strconv.Itoa(code))
	slots[code-100].Store(&c)
	return c
}

// instrument counts and times every request by endpoint and code.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint := "other"
		if _, ok := m.counters[r.URL.Path]; ok {
			endpoint = r.URL.Path
		} else if len(r.URL.Path) > 4 && r.URL.Path[:4] == "/ui/" {
			endpoint = "/ui"
		}
		start := time.Now()
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.code = w, http.StatusOK
		next.ServeHTTP(sw, r)
		m.counter(endpoint, sw.code).Inc()
		if endpoint != "/events" {
			m.duration[endpoint].Observe(time.Since(start).Seconds())
		}
		sw.ResponseWriter = nil
		statusWriters.Put(sw)
	})
}

// statusWriters are reused: one per request would be an allocation on the
// hottest path there is.
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer (flushing and
// write deadlines for /events).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
