package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tc.xs)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("median reordered its input: %v, was %v", in, tc.xs)
		}
	}
}

// The ratios are per pair, their median and range say how far and how
// consistently the new side differs, and a pair with a missing value
// does not count.
func TestSummarize(t *testing.T) {
	s := summarize([]float64{100, 200, 100, 0, 50}, []float64{110, 180, 105, 90, 50})
	want := []float64{1.1, 0.9, 1.05, 1.0}
	if s.n != 4 || len(s.ratios) != 4 {
		t.Fatalf("n %d, ratios %v: want the pair with old 0 left out", s.n, s.ratios)
	}
	for i := range want {
		if math.Abs(s.ratios[i]-want[i]) > 1e-12 {
			t.Errorf("ratio %d = %v, want %v", i, s.ratios[i], want[i])
		}
	}
	if math.Abs(s.ratio-1.025) > 1e-12 || s.lo != 0.9 || math.Abs(s.hi-1.1) > 1e-12 {
		t.Errorf("median %v, range %v–%v; want 1.025, 0.9–1.1", s.ratio, s.lo, s.hi)
	}
	if s.oldMedian != 100 || s.newMedian != 107.5 {
		t.Errorf("medians old %v new %v, want 100 and 107.5", s.oldMedian, s.newMedian)
	}
}

// The rule: slower or faster only when every pair agrees, with at least
// minPairs pairs; which way is slower depends on the figure.
func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		olds, news     []float64
		higherIsBetter bool
		want           string
	}{
		// CPU per request: more is slower.
		{[]float64{100, 100, 100, 100, 100}, []float64{103, 102, 104, 101, 103}, false, "slower by 3.0%"},
		{[]float64{100, 100, 100, 100, 100}, []float64{97, 98, 96, 99, 97}, false, "faster by 3.0%"},
		// One pair on the other side: noise, however large the median.
		{[]float64{100, 100, 100, 100, 100}, []float64{110, 110, 110, 110, 99}, false, "inside the noise"},
		// A ratio of exactly 1.0 straddles.
		{[]float64{100, 100, 100, 100, 100}, []float64{105, 105, 105, 105, 100}, false, "inside the noise"},
		// Throughput: more is faster.
		{[]float64{1000, 1000, 1000, 1000, 1000}, []float64{1050, 1040, 1060, 1050, 1070}, true, "faster by 5.0%"},
		{[]float64{1000, 1000, 1000, 1000, 1000}, []float64{950, 960, 940, 950, 930}, true, "slower by 5.0%"},
		// Too few pairs, even if they all agree.
		{[]float64{100, 100, 100, 100}, []float64{110, 110, 110, 110}, false, "too few pairs (4 of 5) for a verdict"},
		{[]float64{100, 100, 100, 100, 100}, []float64{110, 110, 110, 110, 0}, false, "too few pairs (4 of 5) for a verdict"},
		{nil, nil, false, "no data"},
		// With 9 pairs, 8 on one side are enough; 7 are not.
		{[]float64{100, 100, 100, 100, 100, 100, 100, 100, 100}, []float64{104, 104, 104, 104, 104, 104, 104, 104, 99}, false, "slower by 4.0%"},
		{[]float64{100, 100, 100, 100, 100, 100, 100, 100, 100}, []float64{104, 104, 104, 104, 104, 104, 104, 99, 99}, false, "inside the noise"},
	} {
		if got := summarize(tc.olds, tc.news).verdict(tc.higherIsBetter); got != tc.want {
			t.Errorf("%v → %v (higher better %v): %q, want %q", tc.olds, tc.news, tc.higherIsBetter, got, tc.want)
		}
	}
}

// The sign test's threshold: the fewest of n pairs on one side that n fair
// coin flips reach with a probability of at most 1 in 16.
func TestSignNeed(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 0, 4: 0, 5: 5, 6: 6, 7: 7, 8: 8, 9: 8, 10: 9, 12: 10, 15: 12, 20: 15} {
		if got := signNeed(n); got != want {
			t.Errorf("signNeed(%d) = %d, want %d", n, got, want)
		}
	}
}

// The rows of one stbench -versus run make one pair: per side (a old, b
// new) and workload, the median over the rounds; errors add up, and a
// leader change in any round marks the pair.
func TestPairOf(t *testing.T) {
	rows := []rowResult{
		{Workload: "set64", Side: "a", Round: 1, LeaderCPU: 10, OpsPerSec: 100, Requests: 5, Errors: 1},
		{Workload: "set64", Side: "b", Round: 1, LeaderCPU: 20, OpsPerSec: 200},
		{Workload: "get64", Side: "a", Round: 1, LeaderCPU: 3},
		{Workload: "get64", Side: "b", Round: 1, LeaderCPU: 4, LeaderChanged: true},
		{Workload: "set64", Side: "b", Round: 2, LeaderCPU: 30, OpsPerSec: 100},
		{Workload: "set64", Side: "a", Round: 2, LeaderCPU: 14, OpsPerSec: 300, Requests: 7, Errors: 2},
		{Workload: "get64", Side: "b", Round: 2, LeaderCPU: 6},
		{Workload: "get64", Side: "a", Round: 2, LeaderCPU: 5},
	}
	p := pairOf(rows, "a")
	o, n := p.old["set64"], p.new["set64"]
	if o.LeaderCPU != 12 || o.OpsPerSec != 200 || o.Requests != 12 || o.Errors != 3 || n.LeaderCPU != 25 || n.OpsPerSec != 150 {
		t.Errorf("set64: old %+v, new %+v", o, n)
	}
	if p.old["get64"].LeaderCPU != 4 || p.new["get64"].LeaderCPU != 5 || !p.new["get64"].LeaderChanged || p.old["get64"].LeaderChanged {
		t.Errorf("get64: old %+v, new %+v", p.old["get64"], p.new["get64"])
	}
	// In even pairs the old binary is b.
	p = pairOf(rows, "b")
	if p.old["set64"].LeaderCPU != 25 || p.new["set64"].LeaderCPU != 12 || !p.old["get64"].LeaderChanged {
		t.Errorf("old as b: old %+v, new %+v", p.old, p.new)
	}
}

// The table leaves out a pair whose run saw a leader change and says so.
func TestLoadTable(t *testing.T) {
	row := func(ops, leader, cluster float64, changed bool) map[string]rowResult {
		return map[string]rowResult{"set64": {Workload: "set64", OpsPerSec: ops, LeaderCPU: leader, ClusterCPU: cluster, LeaderChanged: changed, Others: 0.04}}
	}
	var pairs []pair
	for i := range 6 {
		pairs = append(pairs, pair{old: row(1000, 100, 150, false), new: row(1000, 110, 150, i == 2)})
	}
	pairs[4].new["set64"] = rowResult{Workload: "set64", OpsPerSec: 1000, LeaderCPU: 90, ClusterCPU: 150, Others: 0.25}
	var out bytes.Buffer
	printLoadTable(&out, []string{"set64"}, pairs)
	text := out.String()
	for _, want := range []string{
		"set64     leader CPU µs/req         100.0       110.0    1.100  0.900–1.100      4/5  inside the noise",
		"set64     cluster CPU µs/req        150.0       150.0    1.000  1.000–1.000      0/5  inside the noise",
		"set64     leader CPU µs/req   1.100 1.100 - 1.100 0.900 1.100",
		"set64     others' CPU         4/4% 4/4% 4/4% 4/4% 4/25% 4/4%",
		"note: set64, pair 3: the leader changed during a run; pair left out",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}

// perfcheck reads what stbench -results writes (cmd/stbench's
// TestWriteResult checks the other side of this format).
func TestReadResults(t *testing.T) {
	in := `{"workload":"set64","side":"a","round":1,"ops_per_sec":6512.5,"requests":26050,"errors":0,"leader_cpu_us":95.25,"cluster_cpu_us":140.5,"stbench_cpu_us":12.5,"leader_changed":false,"others_cpu":0.03}

{"workload":"get64","side":"b","round":2,"ops_per_sec":21000,"requests":84000,"errors":2,"leader_cpu_us":20.125,"cluster_cpu_us":21,"stbench_cpu_us":8,"leader_changed":true,"others_cpu":0.5}
`
	rows, err := readResults(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []rowResult{
		{"set64", "a", 1, 6512.5, 26050, 0, 95.25, 140.5, 12.5, false, 0.03},
		{"get64", "b", 2, 21000, 84000, 2, 20.125, 21, 8, true, 0.5},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("got %+v, want %+v", rows, want)
	}
	if _, err := readResults(strings.NewReader("set64 6512\n")); err == nil {
		t.Error("a table line was accepted as JSON")
	}
}

// Benchmark files the old tree lacks are copied; its own are kept.
func TestCopyMissingBench(t *testing.T) {
	from, to := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"bench_test.go": "new", "bench_cache_test.go": "paths", "http_test.go": "x"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(to, "bench_test.go"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	copied, err := copyMissingBench(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(copied, []string{"bench_cache_test.go"}) {
		t.Errorf("copied %v, want [bench_cache_test.go]", copied)
	}
	for name, want := range map[string]string{"bench_test.go": "old", "bench_cache_test.go": "paths"} {
		if b, err := os.ReadFile(filepath.Join(to, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(to, "http_test.go")); err == nil {
		t.Error("a test file that is not a benchmark file was copied")
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-ref", "672a9b5", "-workloads", "set64, get64,", "-stbench-flags", "-keys 1000  -tmp /var/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ref != "672a9b5" || cfg.pairs != 5 || cfg.rounds != 2 || !slices.Equal(cfg.workloads, []string{"set64", "get64"}) ||
		!slices.Equal(cfg.stbenchFlags, []string{"-keys", "1000", "-tmp", "/var/tmp"}) || cfg.bench != defaultBench || cfg.count != 10 {
		t.Errorf("got %+v", cfg)
	}
	for _, bad := range [][]string{{"-pairs", "-1"}, {"-rounds", "0"}, {"-pairs", "0", "-bench", ""}, {"-count", "0"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
