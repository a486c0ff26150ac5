// Command perfcheck tells whether the working tree is slower or faster than
// a git revision, and whether the difference is more than the noise.
//
// It checks REF out into a temporary git worktree (removed afterwards),
// builds stcached there and in the working tree, and builds cmd/stbench
// once, from the working tree, so both sides get the same load generator.
// Then, -pairs times, it runs stbench -versus: two fresh 3-node clusters
// side by side, the old binary's and the new one's, each workload run on one
// and then the other (an ABBA order over two rounds) while the other idles,
// -rounds times; the old binary is the first cluster in odd pairs and the
// second in even ones, since the second came out a little cheaper in
// old-against-old checks. A pair's two runs of a workload are seconds
// apart, so whatever else the machine does weighs on both alike; the
// pair's figure per side is the median over its rounds. The
// pair, not the round, is what the verdict counts: the same two clusters
// serve every round of a run, and a cluster's own state (its batching
// rhythm, its heap) can favour it throughout (an old-against-old check saw
// one side cheaper in 7 of 8 rounds).
//
// For every workload it prints the median of the per-pair ratios new/old,
// their range and how many lie above 1.0, for three figures: leader CPU per
// request, cluster CPU per request (both from /proc, as stbench measures
// them) and throughput, and for each pair the share of the machine's CPU
// that other processes used meanwhile. CPU per request is the primary
// figure: it moves less from run to run than throughput does here.
//
// The rule for a verdict is the two-sided sign test at 1 in 16: a figure is
// "slower by X%" or "faster by X%" (X: the median ratio's distance from
// 1.0) only when so many pairs lie on the same side of 1.0 that a change
// making no difference would do so at most 1 time in 16: all of 5 to 8
// pairs, 8 of 9, 9 of 10, 12 of 15. Otherwise it is "inside the noise";
// with fewer than 5 pairs there is no verdict. With several figures, one
// verdict among them can still be luck: rerun with more pairs.
//
// With -bench, it then builds both trees' test binaries and runs the
// in-process benchmarks matching the pattern -count times each, old and new
// interleaved, and compares them with benchstat. Benchmark files
// (bench*_test.go) that REF lacks are copied into its tree first, so
// benchmarks added since can compare too; if REF does not build with them,
// they are left out and the output says so.
//
// Usage (make perfcheck REF=<commit> does the same):
//
//	go run ./cmd/perfcheck -ref HEAD~1 [-pairs 5] [-rounds 2] [-workloads set64,get64] [-duration 4s] [-client raw]
//	    [-bench 'HTTPHandler|Committer|Apply|Cache'] [-count 10]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	ref          string
	newRef       string // -new: a revision instead of the working tree
	pairs        int
	rounds       int
	workloads    []string
	duration     time.Duration
	client       string
	stbenchFlags []string
	bench        string
	count        int
	benchtime    string
	benchstat    string
	keep         bool
}

const defaultBench = "HTTPHandler|Committer|Apply|Cache"

// minPairs is the fewest valid pairs that may give a verdict: with all of
// them on one side of 1.0, 1 chance in 16 that it is luck.
const minPairs = 5

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "perfcheck: %v\n", err)
		os.Exit(2)
	}
	// stbench stops its nodes on SIGINT or SIGTERM; the commands we start
	// get SIGTERM when ctx ends, and we wait for them.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "perfcheck: interrupted")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "perfcheck: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("perfcheck", flag.ContinueOnError)
	fs.StringVar(&cfg.ref, "ref", "HEAD~1", "the git revision to compare the working tree with")
	fs.StringVar(&cfg.newRef, "new", "", "compare -ref with this revision instead of the working tree (checked out like -ref; stbench still comes from the working tree): to find which of several commits moved a figure")
	fs.IntVar(&cfg.pairs, "pairs", 5, "how many pairs: stbench -versus runs, each with a fresh old and new cluster (0: no load runs); a verdict needs at least 5")
	fs.IntVar(&cfg.rounds, "rounds", 2, "rounds per pair: each workload runs this many times on each cluster, alternating which goes first; the pair's figure is the median")
	wl := fs.String("workloads", "set64,get64", "stbench workloads, comma-separated")
	fs.DurationVar(&cfg.duration, "duration", 4*time.Second, "how long each workload runs in each run")
	fs.StringVar(&cfg.client, "client", "raw", "stbench's -client: raw costs the load generator least, so the server's share shows most")
	sf := fs.String("stbench-flags", "", "extra stbench flags, space-separated (e.g. \"-keys 1000 -tmp /var/tmp\")")
	fs.StringVar(&cfg.bench, "bench", defaultBench, "in-process benchmarks to compare with benchstat (a go test -bench pattern; empty: none)")
	fs.IntVar(&cfg.count, "count", 10, "how many times each tree's benchmarks run, interleaved")
	fs.StringVar(&cfg.benchtime, "benchtime", "1s", "go test -benchtime for each benchmark run")
	fs.StringVar(&cfg.benchstat, "benchstat", "", "benchstat command (default: benchstat on PATH, else go run golang.org/x/perf/cmd/benchstat@latest)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (binaries, every run's stbench output and results, benchmark outputs) and print its path")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `perfcheck: is the working tree slower or faster than -ref, beyond the noise?

It builds -ref (in a temporary git worktree) and the working tree, and runs
stbench -versus (built from the working tree) -pairs times: a fresh cluster
of each, every workload on one then the other, -rounds times, alternating
which goes first. Per workload it prints the median new/old ratio, the range and the
count above 1.0 of the per-pair ratios of leader CPU per request, cluster
CPU per request and throughput. A figure is "slower by X%%" or "faster by
X%%" only when enough pairs agree that no-change would do it at most 1 time
in 16 (all of 5 to 8 pairs; at least %d pairs), else "inside the noise".
Then the in-process benchmarks matching -bench, -count runs each,
interleaved, compared by benchstat.

Flags:
`, minPairs)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.pairs < 0 || cfg.rounds <= 0 || cfg.count <= 0 || cfg.duration <= 0 {
		return nil, errors.New("-pairs must be 0 or more, -rounds, -count and -duration positive")
	}
	if cfg.pairs == 0 && cfg.bench == "" {
		return nil, errors.New("nothing to do: -pairs 0 and -bench empty")
	}
	for _, w := range strings.Split(*wl, ",") {
		if w = strings.TrimSpace(w); w != "" {
			cfg.workloads = append(cfg.workloads, w)
		}
	}
	if cfg.pairs > 0 && len(cfg.workloads) == 0 {
		return nil, errors.New("-workloads is empty")
	}
	cfg.stbenchFlags = strings.Fields(*sf)
	return cfg, nil
}

// tree is one side of the comparison.
type tree struct {
	label string // "old" or "new"
	dir   string // where it is checked out
	bin   string // its stcached
}

func run(ctx context.Context, cfg *config, out, progress io.Writer) (err error) {
	root, err := git(ctx, "", "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("not in a git checkout: %w", err)
	}
	commit, err := git(ctx, root, "rev-parse", "--verify", cfg.ref+"^{commit}")
	if err != nil {
		return fmt.Errorf("-ref %s: %w", cfg.ref, err)
	}
	oldDesc, err := git(ctx, root, "log", "-1", "--format=%h %s", commit)
	if err != nil {
		return err
	}
	head, err := git(ctx, root, "log", "-1", "--format=%h", "HEAD")
	if err != nil {
		return err
	}
	dirty, err := git(ctx, root, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return err
	}
	newDesc := "the working tree at " + head
	if dirty != "" {
		newDesc += " with uncommitted changes"
	}
	newCommit := ""
	if cfg.newRef != "" {
		if newCommit, err = git(ctx, root, "rev-parse", "--verify", cfg.newRef+"^{commit}"); err != nil {
			return fmt.Errorf("-new %s: %w", cfg.newRef, err)
		}
		if newDesc, err = git(ctx, root, "log", "-1", "--format=%h %s", newCommit); err != nil {
			return err
		}
	}

	tmp, err := os.MkdirTemp("", "perfcheck-")
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(progress, "perfcheck: kept %s\n", tmp)
		} else if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	checkout := func(name, commit string) (string, error) {
		dir := filepath.Join(tmp, name)
		if _, err := git(ctx, root, "worktree", "add", "--detach", dir, commit); err != nil {
			return "", err
		}
		return dir, nil
	}
	var worktrees []string
	// A background context: the worktrees go even after a Ctrl-C.
	defer func() {
		for _, dir := range worktrees {
			if _, rerr := git(context.Background(), root, "worktree", "remove", "--force", dir); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	refDir, err := checkout("ref", commit)
	if err != nil {
		return err
	}
	worktrees = append(worktrees, refDir)
	newDir := root
	if newCommit != "" {
		if newDir, err = checkout("new", newCommit); err != nil {
			return err
		}
		worktrees = append(worktrees, newDir)
	}
	old := tree{label: "old", dir: refDir, bin: filepath.Join(tmp, "stcached-old")}
	cur := tree{label: "new", dir: newDir, bin: filepath.Join(tmp, "stcached-new")}

	fmt.Fprintf(out, "perfcheck: old = %s\n", oneLine(oldDesc, 100))
	fmt.Fprintf(out, "           new = %s (%s)\n", oneLine(newDesc, 100), newDir)
	if cfg.pairs > 0 {
		stbench := filepath.Join(tmp, "stbench")
		for _, b := range []struct{ dir, out, pkg string }{
			{old.dir, old.bin, "."}, {cur.dir, cur.bin, "."}, {root, stbench, "./cmd/stbench"},
		} {
			fmt.Fprintf(progress, "building %s in %s\n", filepath.Base(b.out), b.dir)
			if err := command(ctx, b.dir, nil, nil, "go", "build", "-o", b.out, b.pkg); err != nil {
				return err
			}
		}
		if err := loadPairs(ctx, cfg, tmp, stbench, old, cur, out, progress); err != nil {
			return err
		}
	}
	if cfg.bench != "" {
		if err := benchCompare(ctx, cfg, tmp, commit, old, cur, out, progress); err != nil {
			return err
		}
	}
	return nil
}

// rowResult is one line of stbench -results (see its rowResult).
type rowResult struct {
	Workload      string  `json:"workload"`
	Side          string  `json:"side"`
	Round         int     `json:"round"`
	OpsPerSec     float64 `json:"ops_per_sec"`
	Requests      int64   `json:"requests"`
	Errors        int64   `json:"errors"`
	LeaderCPU     float64 `json:"leader_cpu_us"`
	ClusterCPU    float64 `json:"cluster_cpu_us"`
	StbenchCPU    float64 `json:"stbench_cpu_us"`
	LeaderChanged bool    `json:"leader_changed"`
	Others        float64 `json:"others_cpu"`
}

// pair is one stbench -versus run: each workload's figures on the old
// binary and on the new (see pairOf).
type pair struct{ old, new map[string]rowResult }

// figure is one column compared: how to read it from a row, and which way
// is better.
type figure struct {
	name           string
	get            func(rowResult) float64
	higherIsBetter bool
}

var figures = []figure{
	{"leader CPU µs/req", func(r rowResult) float64 { return r.LeaderCPU }, false},
	{"cluster CPU µs/req", func(r rowResult) float64 { return r.ClusterCPU }, false},
	{"throughput ops/s", func(r rowResult) float64 { return r.OpsPerSec }, true},
}

func loadPairs(ctx context.Context, cfg *config, tmp, stbench string, old, cur tree, out, progress io.Writer) error {
	load0 := loadAvg()
	var pairs []pair
	for run := 1; run <= cfg.pairs; run++ {
		// Which binary is cluster a (started, preloaded and loaded first in
		// odd rounds) alternates too: in two old-against-old checks the
		// second cluster came out 2-4% cheaper per request.
		a, b, oldSide := old, cur, "a"
		if run%2 == 0 {
			a, b, oldSide = cur, old, "b"
		}
		fmt.Fprintf(progress, "pair %d of %d: stbench -versus, %d rounds (a = %s, b = %s)\n", run, cfg.pairs, cfg.rounds, a.label, b.label)
		rows, err := stbenchRun(ctx, cfg, tmp, stbench, a, b, run, progress)
		if err != nil {
			return err
		}
		pairs = append(pairs, pairOf(rows, oldSide))
	}
	fmt.Fprintf(out, "load: %d pairs, each a stbench -versus run: a fresh old and new cluster side by side, every workload run\n"+
		"      on one then the other, %d rounds; the old cluster is a in odd pairs and b in even ones, and a goes first in\n"+
		"      odd rounds; -client %s -duration %s -workloads %s%s\n",
		cfg.pairs, cfg.rounds, cfg.client, cfg.duration, strings.Join(cfg.workloads, ","), prefixed(" ", strings.Join(cfg.stbenchFlags, " ")))
	fmt.Fprintf(out, "      1-minute load average %s before, %s after (the runs' own load included); %d CPUs\n\n", load0, loadAvg(), runtime.NumCPU())
	printLoadTable(out, cfg.workloads, pairs)
	return nil
}

// stbenchRun runs stbench -versus once, a's binary as -stcached and b's as
// -versus, streams its table to progress, and reads its -results.
func stbenchRun(ctx context.Context, cfg *config, tmp, stbench string, a, b tree, run int, progress io.Writer) ([]rowResult, error) {
	base := filepath.Join(tmp, fmt.Sprintf("pair%d", run))
	args := []string{"-stcached", a.bin, "-versus", b.bin, "-rounds", strconv.Itoa(cfg.rounds), "-client", cfg.client,
		"-duration", cfg.duration.String(), "-workloads", strings.Join(cfg.workloads, ","), "-results", base + ".json"}
	args = append(args, cfg.stbenchFlags...)
	var log bytes.Buffer
	w := io.MultiWriter(progress, &log)
	err := command(ctx, "", w, w, stbench, args...)
	if werr := os.WriteFile(base+".out", log.Bytes(), 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return nil, fmt.Errorf("stbench run %d: %w", run, err)
	}
	f, err := os.Open(base + ".json")
	if err != nil {
		return nil, fmt.Errorf("stbench -results: %w", err)
	}
	defer f.Close()
	return readResults(f)
}

// pairOf makes one stbench -versus run's rows into a pair, oldSide (a or b)
// being the old binary's side: per side and workload, the median of each figure
// over the rounds, the errors summed, and a leader change in any round
// marking the whole pair. Every round is a few seconds from its partner
// on the other side, but the two clusters stay the same for the whole run,
// and a cluster's own state (its batching rhythm, its heap) can favour it
// in every round: so the pair, a fresh pair of clusters, is the unit the
// verdict counts, not the round.
func pairOf(rows []rowResult, oldSide string) pair {
	bySide := map[string]map[string][]rowResult{"a": {}, "b": {}}
	for _, r := range rows {
		if m := bySide[r.Side]; m != nil {
			m[r.Workload] = append(m[r.Workload], r)
		}
	}
	merge := func(rs []rowResult) rowResult {
		m := rowResult{Workload: rs[0].Workload, Side: rs[0].Side}
		get := func(f func(rowResult) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		m.OpsPerSec = get(func(r rowResult) float64 { return r.OpsPerSec })
		m.LeaderCPU = get(func(r rowResult) float64 { return r.LeaderCPU })
		m.ClusterCPU = get(func(r rowResult) float64 { return r.ClusterCPU })
		m.StbenchCPU = get(func(r rowResult) float64 { return r.StbenchCPU })
		m.Others = get(func(r rowResult) float64 { return r.Others })
		for _, r := range rs {
			m.Requests += r.Requests
			m.Errors += r.Errors
			m.LeaderChanged = m.LeaderChanged || r.LeaderChanged
		}
		return m
	}
	newSide := "b"
	if oldSide == "b" {
		newSide = "a"
	}
	p := pair{old: map[string]rowResult{}, new: map[string]rowResult{}}
	for w, rs := range bySide[oldSide] {
		p.old[w] = merge(rs)
	}
	for w, rs := range bySide[newSide] {
		p.new[w] = merge(rs)
	}
	return p
}

// readResults reads stbench -results' JSON lines.
func readResults(r io.Reader) ([]rowResult, error) {
	var rows []rowResult
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var row rowResult
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, fmt.Errorf("stbench -results line %q: %w", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// summary is one figure of one workload over the pairs.
type summary struct {
	oldMedian, newMedian float64
	ratio, lo, hi        float64 // median, min and max of the per-pair new/old
	ratios               []float64
	n                    int // valid pairs
	above, below         int // pairs whose ratio is above 1.0, below 1.0
}

// summarize compares olds[i] with news[i], pair by pair; a pair where either
// value is missing (0 or less) does not count.
func summarize(olds, news []float64) summary {
	var s summary
	var o, n []float64
	for i := range olds {
		if i >= len(news) || olds[i] <= 0 || news[i] <= 0 {
			continue
		}
		o = append(o, olds[i])
		n = append(n, news[i])
		s.ratios = append(s.ratios, news[i]/olds[i])
	}
	s.n = len(s.ratios)
	if s.n == 0 {
		return s
	}
	s.oldMedian, s.newMedian, s.ratio = median(o), median(n), median(s.ratios)
	s.lo, s.hi = slices.Min(s.ratios), slices.Max(s.ratios)
	for _, r := range s.ratios {
		if r > 1 {
			s.above++
		} else if r < 1 {
			s.below++
		}
	}
	return s
}

// chance is the highest probability, for a change that makes no
// difference, of a verdict on one figure: 1 in 16.
const chance = 1.0 / 16

// signNeed is how many of n pairs must lie on the same side of 1.0 for a
// verdict: the fewest that n fair coin flips reach (on either side) with a
// probability of at most chance, the two-sided sign test. 0 when even n of
// n is not that rare (fewer than 5 pairs).
func signNeed(n int) int {
	if n <= 0 {
		return 0
	}
	// tail is P(at least k of n on one given side) = sum C(n,j) / 2^n.
	tail, c := 0.0, 1.0 // c = C(n, k), k from n down
	for k := n; k > n/2; k-- {
		tail += c / math.Pow(2, float64(n))
		if 2*tail > chance+1e-12 {
			if k == n {
				return 0
			}
			return k + 1
		}
		c = c * float64(k) / float64(n-k+1)
	}
	return n/2 + 1
}

// median of xs (the mean of the middle two for an even count); xs is not
// modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// verdict applies the rule: a difference only when at least signNeed(n)
// of the n pairs lie on the same side of 1.0 (all of them, up to 8 pairs).
// For a CPU figure a ratio above 1.0 is slower; for throughput, below.
func (s summary) verdict(higherIsBetter bool) string {
	need := signNeed(s.n)
	switch {
	case s.n == 0:
		return "no data"
	case need == 0:
		return fmt.Sprintf("too few pairs (%d of %d) for a verdict", s.n, minPairs)
	case s.above < need && s.below < need:
		return "inside the noise"
	}
	pct := (s.ratio - 1) * 100
	slower := (pct > 0) != higherIsBetter
	if pct < 0 {
		pct = -pct
	}
	if slower {
		return fmt.Sprintf("slower by %.1f%%", pct)
	}
	return fmt.Sprintf("faster by %.1f%%", pct)
}

func printLoadTable(out io.Writer, workloads []string, pairs []pair) {
	const row = "%-9s %-19s %11s %11s %8s  %-13s %6s  %s\n"
	fmt.Fprintf(out, row, "workload", "figure", "old median", "new median", "new/old", "pairs min–max", "above", "verdict")
	var notes []string
	for _, w := range workloads {
		// A pair counts only if both runs have the row, without a leader
		// change (an election's pause and redirects are not the code's).
		var valid []pair
		for i, p := range pairs {
			o, okO := p.old[w]
			n, okN := p.new[w]
			switch {
			case !okO || !okN:
				notes = append(notes, fmt.Sprintf("%s, pair %d: no row from one of the runs; pair left out", w, i+1))
			case o.LeaderChanged || n.LeaderChanged:
				notes = append(notes, fmt.Sprintf("%s, pair %d: the leader changed during a run; pair left out", w, i+1))
			default:
				valid = append(valid, p)
				if o.Errors > 0 || n.Errors > 0 {
					notes = append(notes, fmt.Sprintf("%s, pair %d: errors old %d, new %d (see stbench's output with -keep)", w, i+1, o.Errors, n.Errors))
				}
			}
		}
		for _, f := range figures {
			olds := make([]float64, len(valid))
			news := make([]float64, len(valid))
			for i, p := range valid {
				olds[i], news[i] = f.get(p.old[w]), f.get(p.new[w])
			}
			s := summarize(olds, news)
			prec := 1
			if f.higherIsBetter {
				prec = 0
			}
			fmt.Fprintf(out, row, w, f.name, strconv.FormatFloat(s.oldMedian, 'f', prec, 64), strconv.FormatFloat(s.newMedian, 'f', prec, 64),
				fmt.Sprintf("%.3f", s.ratio), fmt.Sprintf("%.3f–%.3f", s.lo, s.hi), fmt.Sprintf("%d/%d", s.above, s.n), s.verdict(f.higherIsBetter))
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "per pair, in run order: new/old, and the share of the machine's CPU that other processes used (old/new)")
	for _, w := range workloads {
		for _, f := range figures {
			var rs []string
			for _, p := range pairs {
				o, n := f.get(p.old[w]), f.get(p.new[w])
				if o <= 0 || n <= 0 || p.old[w].LeaderChanged || p.new[w].LeaderChanged {
					rs = append(rs, "-")
					continue
				}
				rs = append(rs, fmt.Sprintf("%.3f", n/o))
			}
			fmt.Fprintf(out, "  %-9s %-19s %s\n", w, f.name, strings.Join(rs, " "))
		}
		var others []string
		for _, p := range pairs {
			others = append(others, fmt.Sprintf("%.0f/%.0f%%", p.old[w].Others*100, p.new[w].Others*100))
		}
		fmt.Fprintf(out, "  %-9s %-19s %s\n", w, "others' CPU", strings.Join(others, " "))
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "new/old is the median of the per-pair ratios; above counts the pairs above 1.0. A figure is slower\n"+
		"or faster only when enough pairs lie on one side of 1.0 that a change making no difference does so\n"+
		"at most 1 time in 16 (two-sided sign test): all of 5 to 8 pairs, 8 of 9, 9 of 10, 12 of 15; with\n"+
		"fewer than %d pairs, no verdict. CPU per request (from /proc) is the primary figure; throughput\n"+
		"varies more between runs on a shared machine.\n", minPairs)
	for _, n := range notes {
		fmt.Fprintln(out, "note:", n)
	}
}

// benchCompare runs the in-process benchmarks in both trees, interleaved,
// and compares them with benchstat.
func benchCompare(ctx context.Context, cfg *config, tmp, commit string, old, cur tree, out, progress io.Writer) error {
	copied, err := copyMissingBench(cur.dir, old.dir)
	if err != nil {
		return err
	}
	oldTest, newTest := filepath.Join(tmp, "old.test"), filepath.Join(tmp, "new.test")
	fmt.Fprintf(progress, "building the test binaries\n")
	var buildLog bytes.Buffer
	build := func(dir, out string) error {
		buildLog.Reset()
		return command(ctx, dir, &buildLog, &buildLog, "go", "test", "-c", "-o", out, ".")
	}
	var dropped []string
	if err := build(old.dir, oldTest); err != nil {
		if len(copied) == 0 {
			return fmt.Errorf("go test -c in %s: %w\n%s", old.dir, err, tail(buildLog.String(), 10))
		}
		// Keep the copied files the old tree builds with, one at a time.
		for _, f := range copied {
			if err := os.Remove(filepath.Join(old.dir, f)); err != nil {
				return err
			}
		}
		var kept []string
		for _, f := range copied {
			if err := copyFile(filepath.Join(cur.dir, f), filepath.Join(old.dir, f)); err != nil {
				return err
			}
			if build(old.dir, oldTest) == nil {
				kept = append(kept, f)
				continue
			}
			dropped = append(dropped, fmt.Sprintf("%s (%s)", f, oneLine(buildLog.String(), 120)))
			if err := os.Remove(filepath.Join(old.dir, f)); err != nil {
				return err
			}
		}
		copied = kept
		if err := build(old.dir, oldTest); err != nil {
			return fmt.Errorf("go test -c in %s: %w\n%s", old.dir, err, tail(buildLog.String(), 10))
		}
	}
	if err := build(cur.dir, newTest); err != nil {
		return fmt.Errorf("go test -c in %s: %w\n%s", cur.dir, err, tail(buildLog.String(), 10))
	}
	results := map[string]*bytes.Buffer{"old": {}, "new": {}}
	bins := map[string]string{"old": oldTest, "new": newTest}
	dirs := map[string]string{"old": old.dir, "new": cur.dir}
	load0 := loadAvg()
	for i := range cfg.count {
		order := []string{"old", "new"}
		if i%2 == 1 {
			order = []string{"new", "old"}
		}
		for _, side := range order {
			fmt.Fprintf(progress, "benchmarks %d/%d %s\n", i+1, cfg.count, side)
			var errBuf bytes.Buffer
			// The test binary runs in its package's directory, as go test
			// runs it.
			if err := command(ctx, dirs[side], results[side], &errBuf, bins[side], "-test.run", "^$",
				"-test.bench", cfg.bench, "-test.count", "1", "-test.benchtime", cfg.benchtime); err != nil {
				return fmt.Errorf("benchmarks in the %s tree: %w\n%s%s", side, err, tail(results[side].String(), 10), errBuf.String())
			}
		}
	}
	fmt.Fprintf(out, "\nin-process benchmarks: go test -run '^$' -bench '%s' -benchtime %s, %d runs per tree, old and new in turn\n",
		cfg.bench, cfg.benchtime, cfg.count)
	fmt.Fprintf(out, "      1-minute load average %s before, %s after\n", load0, loadAvg())
	if len(copied) > 0 {
		fmt.Fprintf(out, "      copied into %s's tree, which lacks them: %s\n", short(commit), strings.Join(copied, ", "))
	}
	for _, d := range dropped {
		fmt.Fprintf(out, "      not copied, since %s does not build with it: %s\n", short(commit), d)
	}
	oldFile, newFile := filepath.Join(tmp, "bench-old.txt"), filepath.Join(tmp, "bench-new.txt")
	for side, f := range map[string]string{"old": oldFile, "new": newFile} {
		if err := os.WriteFile(f, results[side].Bytes(), 0o644); err != nil {
			return err
		}
	}
	bs := strings.Fields(cfg.benchstat)
	if len(bs) == 0 {
		if p, err := exec.LookPath("benchstat"); err == nil {
			bs = []string{p}
		} else {
			bs = []string{"go", "run", "golang.org/x/perf/cmd/benchstat@latest"}
		}
	}
	var stat, statErr bytes.Buffer
	args := append(bs[1:], short(commit)+"="+oldFile, "new="+newFile)
	if err := command(ctx, tmp, &stat, &statErr, bs[0], args...); err != nil {
		fmt.Fprintf(out, "benchstat failed (%s: %v; %s); the raw results follow\n\n", strings.Join(bs, " "), err, oneLine(statErr.String(), 200))
		fmt.Fprintf(out, "--- %s (old) ---\n%s\n--- new ---\n%s", short(commit), results["old"], results["new"])
		return nil
	}
	fmt.Fprintln(out)
	_, err = out.Write(stat.Bytes())
	return err
}

// copyMissingBench copies the benchmark files (bench*_test.go) of from's
// root package that to lacks, and returns their names.
func copyMissingBench(from, to string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(from, "bench*_test.go"))
	if err != nil {
		return nil, err
	}
	var copied []string
	for _, f := range files {
		name := filepath.Base(f)
		dst := filepath.Join(to, name)
		if _, err := os.Stat(dst); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := copyFile(f, dst); err != nil {
			return nil, err
		}
		copied = append(copied, name)
	}
	return copied, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// command runs name with args in dir (the current one if empty). When ctx
// ends it gets SIGTERM, and up to 30 s to stop: stbench then stops its
// nodes.
func command(ctx context.Context, dir string, stdout, stderr io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if stdout == nil && stderr == nil {
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		defer func() {
			if b.Len() > 0 {
				os.Stderr.Write(b.Bytes())
			}
		}()
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

// git runs a git command in dir and returns its trimmed output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return strings.TrimSpace(o.String()), nil
}

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func short(commit string) string { return commit[:min(7, len(commit))] }

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// oneLine is s on one line, cut to n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
