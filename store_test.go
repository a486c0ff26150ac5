package main

// -log-store wal against real processes: a cluster on hashicorp/raft-wal
// takes writes, keeps them over restarts, sends and installs snapshots; a
// data dir opens only with the store it was made with.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWALStore(t *testing.T) {
	beside(t)
	// Few entries kept behind a snapshot, and small segments, so that a
	// few dozen writes make the leader delete the entries a stopped
	// follower needs next: raft-wal deletes whole segments only, and still
	// serves entries compacted away from the segment it appends to (its
	// tail), so with 64 MiB segments the follower would be sent them.
	const trailing = 16
	c := startCluster(t, 3, func(i int, p *proc) {
		p.base = append(p.base, "-log-store", "wal", "-trailing-logs", strconv.Itoa(trailing), "-wal-segment-size", "4KiB")
	})
	l := c.leader()
	want := map[string]string{}
	set := func(k, v string) {
		t.Helper()
		l.expect("/set?key="+k+"&value="+v, 200, "ok\n")
		want[k] = v
	}
	haveAll := func(p *proc) {
		t.Helper()
		for k, v := range want {
			waitValue(t, p, k, v)
		}
	}

	t.Run("files", func(t *testing.T) {
		for _, p := range c.nodes {
			for _, name := range boltFiles {
				if _, err := os.Stat(filepath.Join(p.dir, name)); !os.IsNotExist(err) {
					t.Errorf("%s: %s exists (err %v): a wal node made bolt files", p.name, name, err)
				}
			}
			if _, err := os.Stat(filepath.Join(p.dir, "wal", "wal-meta.db")); err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
			if segs, _ := filepath.Glob(filepath.Join(p.dir, "wal", "*.wal")); len(segs) == 0 {
				t.Errorf("%s: no segment file in %s/wal", p.name, p.dir)
			}
		}
	})

	t.Run("writes", func(t *testing.T) {
		for i := range 10 {
			set(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
		for _, p := range c.nodes {
			haveAll(p)
		}
	})

	t.Run("follower restarts from its data", func(t *testing.T) {
		f := c.followers()[0]
		before, err := f.status()
		if err != nil {
			t.Fatal(err)
		}
		f.stop()
		set("while-down", "1")
		f.restart()
		// The log continues: the node finds its state (term, entries) and
		// starts from it, rather than as a new node.
		waitFor(t, 20*time.Second, f.name+" up", func() error { _, err := f.status(); return err })
		if log := logSince(f); !strings.Contains(log, "existing_state=true") {
			t.Fatalf("%s did not start from its state:\n%s", f.name, log)
		}
		haveAll(f)
		after, err := f.status()
		if err != nil {
			t.Fatal(err)
		}
		if after.LastLogIndex <= before.LastLogIndex || after.Term < before.Term {
			t.Fatalf("%s: index %d term %d before the restart, %d and %d after", f.name, before.LastLogIndex, before.Term, after.LastLogIndex, after.Term)
		}
		set("after-restart", "1")
		waitValue(t, f, "after-restart", "1")
	})

	t.Run("lagging follower installs a snapshot, then appends", func(t *testing.T) {
		f := c.followers()[0]
		st, err := f.status()
		if err != nil {
			t.Fatal(err)
		}
		f.kill()
		behind := st.LastLogIndex
		for i := range 3 * trailing {
			set(fmt.Sprintf("lag%d", i), strconv.Itoa(i))
		}
		// Compaction alone is not enough: raft-wal still serves compacted
		// entries from the segment it appends to, so wait until the segment
		// that held the follower's next entry is deleted.
		fill := 0
		waitFor(t, 30*time.Second, "the leader to delete the segment with "+f.name+"'s next entry", func() error {
			if first := firstSegmentBase(t, l.dir); first <= behind+1 {
				fill++ // entries past the last snapshot make the next one due
				set("lag-fill", strconv.Itoa(fill))
				return fmt.Errorf("the leader's first segment starts at %d; %s has up to %d", first, f.name, behind)
			}
			return nil
		})
		t.Logf("%s stopped at index %d; the leader compacted to %d after %d fillers", f.name, behind, compactedTo(l), fill)
		f.restart()
		haveAll(f)
		if !strings.Contains(logSince(f), "Installed remote snapshot") {
			t.Fatalf("%s caught up without a snapshot: the test did not test it", f.name)
		}
		// The first entries after the snapshot: raft-wal refuses a gap, so
		// the follower's old entries must be gone (raft.MonotonicLogStore).
		set("after-install", "1")
		waitValue(t, f, "after-install", "1")
	})

	t.Run("restart of every node from snapshot and log", func(t *testing.T) {
		for _, p := range c.nodes {
			waitSnapshot(t, p, l, func(m map[string]string) error {
				if m["after-install"] != "1" {
					return fmt.Errorf("snapshot without after-install")
				}
				return nil
			})
		}
		set("after-snapshots", "1") // replayed from the log, not the snapshot
		c.restartAll()
		for _, p := range c.nodes {
			if !strings.Contains(logSince(p), "starting restore from snapshot") {
				t.Errorf("%s did not restore a snapshot", p.name)
			}
			haveAll(p)
		}
		l = c.leader()
		set("after-full-restart", "1")
		for _, p := range c.nodes {
			waitValue(t, p, "after-full-restart", "1")
		}
	})

	t.Run("refuses a data dir in use and a bad flag", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"-dir", l.dir, "-log-store", "wal"}, 1, "wal-meta.db: locked by another process"},
			{[]string{"-log-store", "lsm"}, 2, `-log-store "lsm": want bolt or wal`},
			{[]string{"-log-store", "wal", "-wal-segment-size", "1KiB"}, 2, `-wal-segment-size "1KiB": want 4KiB to 1GiB`},
			{[]string{"-wal-segment-size", "1MiB"}, 2, "-wal-segment-size is for -log-store wal only"},
		} {
			out, code := runDaemon(t, append(tc.args, "-http", freeAddr(t), "-raft", freeAddr(t))...)
			if last := lastLine(out); code != tc.code || !strings.HasPrefix(last, "stcached: ") || !strings.Contains(last, tc.msg) {
				t.Errorf("%v: exit %d, last line %q; want exit %d and %q\n%s", tc.args, code, last, tc.code, tc.msg, out)
			}
		}
	})

	t.Run("refuses the other store's data dir", func(t *testing.T) {
		walNode := c.followers()[0]
		walNode.stop()
		boltNode := newProc(t, "boltnode")
		boltNode.start("-bootstrap")
		waitLeader(t, 20*time.Second, []*proc{boltNode}, nil).expect("/set?key=k&value=v", 200, "ok\n")
		boltNode.stop()

		for _, tc := range []struct {
			p     *proc
			store string
			msg   string
		}{
			{walNode, "bolt", "holds a wal log store"},
			{boltNode, "wal", "holds a bolt log store"},
		} {
			before := listFiles(t, tc.p.dir)
			out, code := runDaemon(t, "-dir", tc.p.dir, "-http", freeAddr(t), "-raft", freeAddr(t), "-log-store", tc.store)
			last := lastLine(out)
			if code != 1 || !strings.HasPrefix(last, "stcached: ") || !strings.Contains(last, tc.msg) {
				t.Errorf("-log-store %s on %s's data: exit %d, last line %q; want exit 1 and %q\n%s", tc.store, tc.p.name, code, last, tc.msg, out)
			}
			if after := listFiles(t, tc.p.dir); !slices.Equal(after, before) {
				t.Errorf("-log-store %s changed %s's data dir:\nbefore %v\nafter  %v", tc.store, tc.p.name, before, after)
			}
		}
		// Each still starts with its own store, its data intact.
		boltNode.restart()
		waitValue(t, boltNode, "k", "v")
		walNode.restart()
		haveAll(walNode)
	})
}

// firstSegmentBase is the lowest first index of the raft-wal segment files
// in a data dir (their names start with it), 0 if there is none.
func firstSegmentBase(t *testing.T, dir string) uint64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	var first uint64
	for _, seg := range segs {
		base, _, ok := strings.Cut(filepath.Base(seg), "-")
		n, err := strconv.ParseUint(base, 10, 64)
		if !ok || err != nil {
			t.Fatalf("segment file %s: not <first index>-<id>.wal", seg)
		}
		if first == 0 || n < first {
			first = n
		}
	}
	return first
}

// listFiles lists every file and directory under dir with its size and
// modification time, sorted: what a start that must not touch dir compares.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %s", strings.TrimPrefix(path, dir), fi.Size(), fi.ModTime().Format(time.RFC3339Nano)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
