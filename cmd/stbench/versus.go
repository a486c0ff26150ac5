package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// runVersus is -versus: two clusters side by side, a from -stcached and b
// from -versus, and every workload run on each in turn, -rounds times, the
// first in odd rounds being a and in even rounds b. Only one cluster is
// loaded at a time; the other idles (heartbeats). Each pair of runs is a few
// seconds apart, rather than a whole stbench run (cluster start and
// preload) as with two separate invocations, so whatever else the machine
// does at the time weighs on both sides alike.
func runVersus(ctx context.Context, cfg *config, out io.Writer) (err error) {
	bins := map[string]string{"a": cfg.stcached, "b": cfg.versus}
	for side, b := range bins {
		p, err := exec.LookPath(b)
		if err != nil {
			return fmt.Errorf("binary %s: %w", side, err)
		}
		if bins[side], err = filepath.Abs(p); err != nil {
			return err
		}
	}
	dir, err := benchDir(cfg.tmp)
	if err != nil {
		return err
	}
	results, closeResults, err := openResults(cfg.results)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeResults(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	extra, err := secureAPI(cfg)
	if err != nil {
		return err
	}
	sides := []string{"a", "b"}
	lanes := map[string]*lane{}
	defer func() {
		for _, l := range lanes {
			l.c.stop()
			if l.b != nil {
				l.b.close()
			}
		}
		if cfg.keep {
			fmt.Fprintf(out, "kept node data and logs in %s\n", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, side := range sides {
		d := filepath.Join(dir, side)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		flags := strings.Fields(cfg.nodeFlags)
		if side == "b" {
			flags = append(flags, strings.Fields(cfg.versusFlags)...)
		}
		c := &cluster{bin: bins[side], dir: d, extra: append(flags, extra...), target: cfg.target}
		l := &lane{c: c}
		lanes[side] = l
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("cluster %s: %w", side, err)
		}
		if l.leader, l.term, err = c.waitReady(ctx, 60*time.Second); err != nil {
			return fmt.Errorf("cluster %s: %w", side, err)
		}
		if l.b, err = newBencher(cfg, l.leader.http, c.httpAddrs()...); err != nil {
			return err
		}
		fmt.Fprintf(out, "stbench: cluster %s: 3 nodes from %s, leader %s (http %s)\n", side, strings.Join(append([]string{bins[side]}, flags...), " "), l.leader.name, l.leader.http)
	}
	fmt.Fprintf(out, "%d CPUs, GOMAXPROCS %d; keyspace %d keys, values %d bytes, %s per workload, %s clients\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cfg.keys, cfg.valueSize, cfg.duration, clientName(cfg))
	for _, side := range sides {
		t0 := time.Now()
		if err := lanes[side].b.preload(ctx); err != nil {
			return fmt.Errorf("cluster %s: %w", side, err)
		}
		fmt.Fprintf(out, "preload %s: %d sets in %s\n", side, cfg.keys, time.Since(t0).Round(time.Millisecond))
	}
	// The first runs after a start cost more (the heap grows, the
	// committer's rhythm settles): 15-20% more leader CPU per get in a
	// first round than in a second, seen on both sides. A second of each
	// workload on each cluster, unmeasured, takes that out of round 1.
	for _, side := range sides {
		for _, w := range cfg.workloads {
			if _, err := lanes[side].b.runWorkloadFor(ctx, w, warmup); err != nil {
				return fmt.Errorf("cluster %s: warm-up: %w", side, err)
			}
		}
	}
	fmt.Fprintf(out, "warm-up: each workload for %s on each cluster, unmeasured\n", warmup)
	fmt.Fprintf(out, "%d rounds: every workload on a and b in turn, a first in odd rounds\n\n", cfg.rounds)
	printHeader(out)
	var notes []string
	for round := 1; round <= cfg.rounds; round++ {
		order := sides
		if round%2 == 0 {
			order = []string{"b", "a"}
		}
		for _, w := range cfg.workloads {
			for _, side := range order {
				label := fmt.Sprintf("%s/%s", w.name, side)
				base := rowResult{Workload: w.name, Side: side, Round: round}
				if err := lanes[side].measure(ctx, cfg, w, label, out, results, &notes, base); err != nil {
					return fmt.Errorf("round %d, %s: %w", round, label, err)
				}
			}
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "batch: successful sets per Raft log entry (group commit)")
	fmt.Fprintln(out, "leader, cluster (its 3 nodes), stbench: CPU time per answered request, in microseconds")
	for _, n := range notes {
		fmt.Fprintln(out, n)
	}
	for _, side := range sides {
		l := lanes[side]
		for _, n := range l.c.nodes {
			role := "follower"
			if n == l.leader {
				role = "leader"
			}
			fmt.Fprintf(out, "%s: %s (%s) peak RSS %s\n", side, n.name, role, procMem(n.pid(), "VmHWM"))
		}
	}
	return nil
}

// warmup is how long each workload runs on each cluster before the first
// round of -versus.
const warmup = time.Second

// clientName is how the output names -client.
func clientName(cfg *config) string {
	switch {
	case cfg.raw:
		return "raw"
	case cfg.pkg:
		return "client package (net/http underneath)"
	case cfg.wrk:
		return "wrk (preload by net/http)"
	}
	return "net/http"
}
