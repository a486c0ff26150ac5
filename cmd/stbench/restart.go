package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// reportScale prints what grows with the data: the leader's memory per key
// (reportMemory), the leader's last snapshot once one covers everything
// written (how long it took, from raft's own log lines, the size of
// state.bin, and how far the leader's RSS rose meanwhile) and the time a
// restarted follower takes to serve again. It restarts a
// follower rather than the leader so that the cluster keeps its leader and
// the figure is the node's own: open the stores, restore the snapshot,
// replay the log after it, catch up with the leader.
func reportScale(ctx context.Context, c *cluster, leader *node, out io.Writer) error {
	var f *node
	for _, n := range c.nodes {
		if n != leader {
			f = n
			break
		}
	}
	if err := reportMemory(ctx, leader, out); err != nil {
		return err
	}
	// Two more writes (two entries: stcached's -snapshot-threshold), so
	// that the snapshot waited for below is taken while the leader's RSS is
	// watched: what a snapshot adds at its peak.
	before, err := readProcMemory(leader.pid())
	if err != nil {
		return err
	}
	for _, v := range []string{"scale1", "scale2"} {
		if err := c.probeSet(ctx, api.client, leader, v); err != nil {
			return err
		}
	}
	sampler := sampleRSS(leader.pid(), 10*time.Millisecond)
	// Raft snapshots on its own timer (-snapshot-interval, with jitter):
	// wait until both the leader and the node to restart have one that
	// covers everything written, so that the restart restores a snapshot
	// of the whole map rather than replaying the log.
	lst, err := getStatus(ctx, leader)
	if err != nil {
		sampler.Stop()
		return err
	}
	wait := time.Now().Add(3 * time.Minute)
	for _, n := range []*node{leader, f} {
		for {
			st, err := getStatus(ctx, n)
			if err == nil && st.LastSnapshotIndex >= lst.CommitIndex {
				break
			}
			if time.Now().After(wait) {
				sampler.Stop()
				return fmt.Errorf("%s has no snapshot up to index %d 3m after the load (last: %+v, %v)", n.name, lst.CommitIndex, st, err)
			}
			select {
			case <-ctx.Done():
				sampler.Stop()
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	peak := sampler.Stop()
	if d, index, ok := lastSnapshot(leader.log); ok {
		fmt.Fprintf(out, "snapshot: %s's last one (index %s) took %s; state.bin %s; leader RSS %s before, peak %s (%+.1f MiB)\n",
			leader.name, index, d.Round(time.Millisecond), stateBinSize(leader.dir), mib(before.rss), mib(peak.rss),
			float64(peak.rss-before.rss)/(1<<20))
	} else {
		fmt.Fprintf(out, "snapshot: %s has not logged a complete snapshot\n", leader.name)
	}

	if lst, err = getStatus(ctx, leader); err != nil {
		return err
	}
	t0 := time.Now()
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", f.name, err)
	}
	select {
	case <-f.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", f.name)
	}
	stopped := time.Since(t0)
	if err := c.startNode(f, false); err != nil {
		return err
	}
	t1 := time.Now()
	deadline := t1.Add(5 * time.Minute)
	var answered time.Duration
	for {
		if f.hasExited() {
			return fmt.Errorf("%s exited after its restart%s", f.name, c.logTails())
		}
		st, err := getStatus(ctx, f)
		if err == nil {
			if answered == 0 {
				answered = time.Since(t1)
			}
			if st.State == "Follower" && st.Leader == leader.raft && st.AppliedIndex >= lst.CommitIndex {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving 5m after its restart (last: %v)", f.name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	serving := time.Since(t1)
	fmt.Fprintf(out, "restart: %s stopped %s after SIGTERM; restarted, it answered /status after %s and was serving "+
		"(following %s, %d keys, applied up to the leader's commit index %d) after %s; peak RSS %s\n",
		f.name, stopped.Round(time.Millisecond), answered.Round(time.Millisecond), leader.name,
		lst.Keys, lst.CommitIndex, serving.Round(time.Millisecond), procMem(f.pid(), "VmHWM"))
	return nil
}

// lastSnapshot finds the last "starting snapshot up to" / "snapshot
// complete up to" pair that hashicorp/raft logged, and the time between.
func lastSnapshot(logPath string) (time.Duration, string, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	var start time.Time
	var took time.Duration
	var index string
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, _, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		t, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "raft: starting snapshot up to"):
			start = t
		case strings.Contains(line, "raft: snapshot complete up to") && !start.IsZero():
			took, found = t.Sub(start), true
			if _, v, ok := strings.Cut(line, "index="); ok {
				index = strings.Fields(v)[0]
			}
		}
	}
	return took, index, found
}

// stateBinSize is the size of the newest snapshot's state.bin under dir.
func stateBinSize(dir string) string {
	paths, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	var newest os.FileInfo
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err == nil && (newest == nil || fi.ModTime().After(newest.ModTime())) {
			newest = fi
		}
	}
	if newest == nil {
		return "not found"
	}
	return fmt.Sprintf("%.1f MiB", float64(newest.Size())/(1<<20))
}
