package main

// Benchmarks of the daemon's hot paths, in process (no Raft, no disk sync):
//
//	go test -run '^$' -bench . -benchtime 1x      # quick look
//	go test -run '^$' -bench 'Encode|Decode|Apply|HTTP'
//	go test -run '^$' -bench Snapshot -benchtime 3x
//
// The cluster as a whole is measured by cmd/stbench (make bench).

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

const benchValueSize = 100

// benchValue returns a distinct value of benchValueSize bytes for key i, so
// that the map holds as many separate strings as a real one would.
func benchValue(i int) string {
	b := make([]byte, benchValueSize)
	for j := range b {
		b[j] = 'a' + byte(j%26)
	}
	copy(b, strconv.Itoa(i))
	return string(b)
}

func benchKey(i int) string { return "key-" + strconv.Itoa(i) }

func benchCmds(n, first int) []command {
	cmds := make([]command, n)
	for i := range cmds {
		cmds[i] = command{op: opSet, key: benchKey(first + i), value: benchValue(first + i)}
	}
	return cmds
}

func BenchmarkEncodeCommands(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			cmds := benchCmds(n, 0)
			size := len(encodeCommands(nil, cmds))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				// A fresh, sized buffer per entry, as the committer does
				// (Raft keeps the slice after Apply returns).
				_ = encodeCommands(make([]byte, 0, size), cmds)
			}
		})
	}
}

func BenchmarkDecodeCommands(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			entry := encodeCommands(nil, benchCmds(n, 0))
			b.SetBytes(int64(len(entry)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeCommands(entry); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFSMApply applies 64-op batch entries (overwrites over a 10,000-key
// map): decode, one write lock, 64 map assignments.
func BenchmarkFSMApply(b *testing.B) {
	const keys, batch = 10000, 64
	f := newFSM(newCache(), hclog.NewNullLogger())
	var logs []*raft.Log
	for first := 0; first+batch <= keys; first += batch {
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Data: encodeCommands(nil, benchCmds(batch, first))})
	}
	for i, l := range logs {
		l.Index = uint64(i + 1)
		f.Apply(l)
	}
	n := applyLoop(b, f, logs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/write")
}

// applyLoop applies logs round-robin for the benchmark's iterations and
// returns how many it applied.
func applyLoop(b *testing.B, f *fsm, logs []*raft.Log) int {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if r := f.Apply(logs[i%len(logs)]); r != nil {
			b.Fatal(r)
		}
		i++
	}
	return i
}

// ---- HTTP handlers ----

// benchStore answers at once, so only the HTTP layer is measured.
type benchStore struct{}

var benchGetValue = benchValue(0)

func (benchStore) Set(string, string, time.Duration) (uint64, error) { return 1, nil }
func (benchStore) Delete(string) (uint64, error)                     { return 1, nil }
func (benchStore) Get(string, bool) (string, bool, error) {
	return benchGetValue, true, nil
}
func (benchStore) Join(string, string, bool) (uint64, error) { return 0, nil }
func (benchStore) Leave(string) (uint64, error)              { return 0, nil }
func (benchStore) Status() status                            { return status{} }
func (benchStore) Members() []server                         { return nil }
func (benchStore) Lab() *lab                                 { return nil }
func (benchStore) TransferLeadership(string) error           { return nil }
func (benchStore) SnapshotNow() (bool, error)                { return false, nil }
func (benchStore) Log(_, _ uint64, head func(first, last uint64), _ func(logEntry) error) error {
	head(0, 0)
	return nil
}

// discardWriter is a ResponseWriter that keeps nothing, so the allocations
// counted are the handler's, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkHTTPHandler runs the handler alone (no sockets, no net/http
// server): what our own code allocates per request.
// The "+metrics" cases add what /metrics costs each request (counting
// and timing); the "+full" ones are the handler as main.go wraps it, with
// the Host check (a request naming the node by its IP, as programs do),
// the metrics and the body deadline's wrapper.
func BenchmarkHTTPHandler(b *testing.B) {
	plain := newHandler(benchStore{}, newHub("bench"), hclog.NewNullLogger(), security{}, nil)
	met, err := newMetrics()
	if err != nil {
		b.Fatal(err)
	}
	measured := met.instrument(plain)
	const host = "127.0.0.1:6000"
	full := limitBody(met.instrument(newHandler(benchStore{}, newHub("bench"), hclog.NewNullLogger(), security{
		origin: newOriginPolicy([]string{host}, nil, benchStore{}.Members),
	}, nil)), bodyTimeout)
	for _, tc := range []struct {
		name, query, host string
		h                 http.Handler
	}{
		{"set", "/set?key=k123&value=" + benchValue(123), "", plain},
		{"get", "/get?key=k123", "", plain},
		{"strong", "/get?key=k123&consistency=strong", "", plain},
		{"set+metrics", "/set?key=k123&value=" + benchValue(123), "", measured},
		{"get+metrics", "/get?key=k123", "", measured},
		{"set+full", "/set?key=k123&value=" + benchValue(123), host, full},
		{"get+full", "/get?key=k123", host, full},
	} {
		h := tc.h
		b.Run(tc.name, func(b *testing.B) {
			u, err := url.Parse(tc.query)
			if err != nil {
				b.Fatal(err)
			}
			r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}, Host: tc.host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// ---- snapshots of 1M keys ----

const benchSnapKeys = 1_000_000

var (
	bigFSMOnce sync.Once
	bigFSM     *fsm
	bigState   []byte // state.bin of bigFSM
)

// bigSnapshotFSM builds, once per test binary, an FSM holding 1M keys of
// 100-byte values and its state.bin.
func bigSnapshotFSM(b *testing.B) (*fsm, []byte) {
	b.Helper()
	bigFSMOnce.Do(func() {
		f := newFSM(newCache(), hclog.NewNullLogger())
		const batch = 1000
		for first := 0; first < benchSnapKeys; first += batch {
			f.Apply(&raft.Log{Index: uint64(first/batch + 1), Type: raft.LogCommand, Data: encodeCommands(nil, benchCmds(batch, first))})
		}
		snap, err := f.Snapshot()
		if err != nil {
			panic(err)
		}
		sink := &benchSink{w: &bytes.Buffer{}}
		if err := snap.Persist(sink); err != nil {
			panic(err)
		}
		snap.Release()
		bigFSM, bigState = f, sink.w.(*bytes.Buffer).Bytes()
	})
	if bigFSM == nil {
		b.Fatal("building the 1M-key FSM failed earlier")
	}
	return bigFSM, bigState
}

// benchSink is a raft.SnapshotSink over any writer.
type benchSink struct{ w io.Writer }

func (s *benchSink) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *benchSink) ID() string                  { return "bench" }
func (s *benchSink) Close() error                { return nil }
func (s *benchSink) Cancel() error               { return nil }

// BenchmarkSnapshotTake measures what a snapshot costs the writes on a 1M-key
// FSM. Raft calls Snapshot on its FSM goroutine, so every Apply waits for it
// ("take"); Persist then runs concurrently with Apply, and "apply-held" is
// one 64-op Apply batch during that time ("apply" is the same without a
// snapshot, for comparison); Release runs under the cache's write lock, and
// "release" is its cost after 64k overwrites during the snapshot.
func BenchmarkSnapshotTake(b *testing.B) {
	f, _ := bigSnapshotFSM(b)
	const batch = 64
	var logs []*raft.Log
	for first := 0; first+batch <= 64*1024; first += batch {
		// Overwrites with the same values, so the FSM stays as built.
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Data: encodeCommands(nil, benchCmds(batch, first))})
	}
	b.Run("take", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			snap, err := f.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			snap.Release()
		}
		b.ReportMetric(benchSnapKeys, "keys")
	})
	b.Run("apply", func(b *testing.B) { applyLoop(b, f, logs) })
	b.Run("apply-held", func(b *testing.B) {
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		defer snap.Release()
		applyLoop(b, f, logs)
	})
	b.Run("release", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			snap, err := f.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range logs {
				f.Apply(l)
			}
			b.StartTimer()
			snap.Release()
		}
		b.ReportMetric(float64(len(logs)*batch), "writes")
	})
}

// BenchmarkSnapshotPersist writes state.bin of 1M keys; Raft runs this
// concurrently with Apply, so it costs CPU and memory, not write latency.
func BenchmarkSnapshotPersist(b *testing.B) {
	f, state := bigSnapshotFSM(b)
	snap, err := f.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Release()
	b.Run("discard", func(b *testing.B) {
		b.SetBytes(int64(len(state)))
		b.ReportAllocs()
		for b.Loop() {
			if err := snap.Persist(&benchSink{w: io.Discard}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		// Page cache only: the real sink's fsync is the disk's business.
		out, err := os.Create(b.TempDir() + "/state.bin")
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		b.SetBytes(int64(len(state)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := out.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			if err := snap.Persist(&benchSink{w: out}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSnapshotRestore decodes state.bin of 1M keys into a fresh FSM, as
// a restarting or lagging node does. peak-heap-MB is the largest heap growth
// seen while it runs: the cost of holding the snapshot's bytes and the new
// map at once.
func BenchmarkSnapshotRestore(b *testing.B) {
	_, state := bigSnapshotFSM(b)
	b.SetBytes(int64(len(state)))
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		f := newFSM(newCache(), hclog.NewNullLogger())
		stopSampling := sampleHeap(&peak)
		if err := f.Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
			b.Fatal(err)
		}
		stopSampling()
		if n := f.cache.Len(); n != benchSnapKeys {
			b.Fatalf("restored %d keys, want %d", n, benchSnapKeys)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(len(state))/(1<<20), "state-MB")
}

// sampleHeap records into peak the largest growth of live heap objects over
// the heap at the call, until the returned function is called. runtime/metrics
// reads do not stop the world, unlike runtime.ReadMemStats.
func sampleHeap(peak *uint64) (stop func()) {
	runtime.GC()
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		rtmetrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	var done atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for !done.Load() {
			if v := read(); v > base && v-base > *peak {
				*peak = v - base
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() { done.Store(true); <-finished }
}
