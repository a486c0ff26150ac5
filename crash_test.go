package main

// Crashes at the worst moments, against real processes: kill -9 while a
// snapshot is being written, while a lagging follower is receiving one, and
// during the leadership hand-over that SIGTERM starts; and snapshot files
// damaged on disk. After each crash the node must start again and every
// acknowledged write must be there; a damaged file must stop the node with
// one line and stay as it was.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func skipCrashInShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("crash tests run real clusters with tens of MB of data; skipped in -short")
	}
}

// crashValue is the value written under key: size bytes that start with the
// key, so a value read back under the wrong key, or cut short, is caught.
func crashValue(key string, size int) string {
	var b strings.Builder
	b.Grow(size)
	b.WriteString(key)
	b.WriteByte('=')
	for i := 0; b.Len() < size; i++ {
		b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[(i+len(key))%36])
	}
	return b.String()[:size]
}

// postSet sends a write as a POST (the contract's advice for programs: a
// POST is never resent behind our back, so an answer is about one attempt).
func postSet(addr, key, value string) (reply, error) {
	return postForm(addr, "/set", url.Values{"key": {key}, "value": {value}})
}

// writeLog records the outcome of every write: acknowledged (200 ok: must
// survive anything), refused (307/503 "write method not allowed": must
// never have happened) or indeterminate (anything else: may or may not).
type writeLog struct {
	mu      sync.Mutex
	acked   map[string]string
	refused map[string]bool
	unknown map[string]bool
	nAcked  atomic.Int64
}

func newWriteLog() *writeLog {
	return &writeLog{acked: map[string]string{}, refused: map[string]bool{}, unknown: map[string]bool{}}
}

func (w *writeLog) ackedCount() int { return int(w.nAcked.Load()) }

// set writes key=value through addr and records the outcome. It returns the
// leader hint of a refusal ("" if none) and whether the node answered at all.
func (w *writeLog) set(addr, key, value string) (hint string, answered bool) {
	r, err := postSet(addr, key, value)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil && r.code == 200 && r.body == "ok\n":
		w.acked[key] = value
		w.nAcked.Add(1)
	case err == nil && r.code == 307 && r.body == "write method not allowed\n":
		w.refused[key] = true
		return r.header.Get("X-Raft-Leader"), true
	case err == nil && r.code == 503 && r.body == "write method not allowed\n":
		w.refused[key] = true
		return "", false // no leader known: back off as if it were down
	case err != nil && errors.Is(err, syscall.ECONNREFUSED):
		return "", false // never sent: nothing listens (a node down or stopping)
	default:
		w.unknown[key] = true
		return "", err == nil
	}
	return "", true
}

// writers starts n concurrent writers of unique keys prefix<w>-<i> (values
// of size bytes), each pausing pace between writes; each follows leader
// hints and, when the node it writes to is gone, asks c (if not nil) who
// leads now. stop ends them and waits until they are done.
func (w *writeLog) writers(n int, prefix string, size int, pace time.Duration, target func() string, c *cluster) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			addr := target()
			for j := 0; ; j++ {
				select {
				case <-done:
					return
				default:
				}
				key := fmt.Sprintf("%s%d-%d", prefix, i, j)
				hint, answered := w.set(addr, key, crashValue(key, size))
				// The pauses are a client's pacing and back-off (while
				// there is no leader, or the node is down), not
				// synchronisation.
				switch {
				case hint != "":
					addr = hint
				case !answered && c != nil:
					addr = nextTarget(c, addr)
					time.Sleep(20 * time.Millisecond)
				case !answered:
					time.Sleep(20 * time.Millisecond)
				default:
					time.Sleep(pace)
				}
			}
		}(i)
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// verify checks p's own map (stale reads: what this node holds) against
// the log: every acknowledged write with its value, no refused one. It
// returns the first difference, so it can be polled while p catches up.
func (w *writeLog) verify(p *proc) error {
	w.mu.Lock()
	acked := make(map[string]string, len(w.acked))
	for k, v := range w.acked {
		acked[k] = v
	}
	var refused []string
	for k := range w.refused {
		refused = append(refused, k)
	}
	w.mu.Unlock()
	for k, v := range acked {
		r, err := p.call("/get?key=" + url.QueryEscape(k))
		if err != nil {
			return err
		}
		if r.code != 200 || r.body != v+"\n" {
			return fmt.Errorf("%s: acknowledged %s (%d bytes) reads %d, %d bytes %.40q", p.name, k, len(v), r.code, len(r.body), r.body)
		}
	}
	for _, k := range refused {
		r, err := p.call("/get?key=" + url.QueryEscape(k))
		if err != nil {
			return err
		}
		if r.code != 404 {
			return fmt.Errorf("%s: refused write %s happened: %d %.40q", p.name, k, r.code, r.body)
		}
	}
	return nil
}

// waitHolds waits until p holds what verify checks; it fails at once,
// with its last log line, if p exits meanwhile.
func (w *writeLog) waitHolds(t *testing.T, p *proc) {
	t.Helper()
	waitFor(t, 60*time.Second, p.name+" to hold every acknowledged write and no refused one", func() error {
		if !p.running() {
			t.Fatalf("%s exited: %s", p.name, exitReason(p))
		}
		return w.verify(p)
	})
}

func (w *writeLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d acknowledged, %d refused, %d indeterminate", len(w.acked), len(w.refused), len(w.unknown))
}

// snapshotIndex is the log index in a snapshot directory's name.
func snapshotIndex(name string) uint64 {
	parts := strings.Split(strings.TrimSuffix(name, ".tmp"), "-")
	if len(parts) != 3 {
		return 0
	}
	i, _ := strconv.ParseUint(parts[1], 10, 64)
	return i
}

// fileSums is a digest of every file under root, by relative path.
func fileSums(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		sums[rel] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

func sameSums(a, b map[string][32]byte) error {
	var diff []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		return fmt.Errorf("changed: %v", diff)
	}
	return nil
}

// startRefused runs p's daemon with its usual flags and expects it to
// refuse to start. It returns the output and exit code, or fails at once if
// the node starts serving instead (then it stops it).
func startRefused(t *testing.T, p *proc) (string, int) {
	t.Helper()
	cmd := exec.Command(daemonPath, p.args()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			return out.String(), cmd.ProcessState.ExitCode()
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := call(p.http, "/status"); err == nil || time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("the node started (or hung) instead of refusing:\n%s", out.String())
		}
	}
}

// A snapshot file damaged on disk (truncated or garbled, meta.json or
// state.bin, including damage that keeps every size right) stops the node
// at start with one line saying which snapshot and what is wrong, and
// nothing under snapshots/ changes.
func TestCrashDamagedSnapshotRefused(t *testing.T) {
	skipCrashInShort(t)
	p := newProc(t, "node1")
	p.start("-bootstrap")
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	want := map[string]string{}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			k := fmt.Sprintf("k%d", i)
			want[k] = crashValue(k, 100)
			p.expect("/set?key="+k+"&value="+url.QueryEscape(want[k]), 200, "ok\n")
		}
	}
	hasKey := func(k string) func(map[string]string) error {
		return func(m map[string]string) error {
			if m[k] != want[k] {
				return fmt.Errorf("snapshot without %s", k)
			}
			return nil
		}
	}
	snapDir := func() string {
		t.Helper()
		metas, _ := filepath.Glob(filepath.Join(p.dir, "snapshots", "*", "meta.json"))
		if len(metas) != 1 {
			t.Fatalf("snapshots: %v", metas)
		}
		return filepath.Dir(metas[0])
	}
	// An older snapshot, kept aside to play the one a crash between raft's
	// rename of a new snapshot and its reaping of the old leaves behind.
	write(0, 20)
	waitSnapshot(t, p, p, hasKey("k19"))
	// Raft may take the next snapshot (a filler write is enough) and reap
	// this one while it is copied: then copy the next one, which holds k19
	// too (make test failed once with "open state.bin: no such file").
	var older, olderCopy string
	waitFor(t, 10*time.Second, "a copy of the snapshot", func() error {
		metas, _ := filepath.Glob(filepath.Join(p.dir, "snapshots", "*", "meta.json"))
		if len(metas) != 1 {
			return fmt.Errorf("snapshots: %v", metas)
		}
		older = filepath.Dir(metas[0])
		olderCopy = filepath.Join(t.TempDir(), filepath.Base(older))
		return os.CopyFS(olderCopy, os.DirFS(older))
	})
	write(20, 30)
	waitSnapshot(t, p, p, hasKey("k29"))
	p.stop()
	newest := snapDir()
	if newest == older {
		t.Fatalf("no newer snapshot than %s", older)
	}
	meta, state := filepath.Join(newest, "meta.json"), filepath.Join(newest, "state.bin")
	flipLetter := func(b []byte) []byte {
		// The first lowercase letter from the middle on changes case: the
		// same size, still a JSON object of strings, another value.
		b = append([]byte(nil), b...)
		i := len(b) / 2
		for b[i] < 'a' || b[i] > 'z' {
			i++
		}
		b[i] ^= 0x20
		return b
	}
	for _, tc := range []struct {
		name    string
		file    string
		damage  func([]byte) []byte
		message string
		beside  bool // with the older snapshot beside it
	}{
		{"meta.json empty", meta, func([]byte) []byte { return nil }, "meta.json is not valid", false},
		{"meta.json garbled", meta, func([]byte) []byte { return []byte("garbage{") }, "meta.json is not valid", false},
		{"meta.json truncated", meta, func(b []byte) []byte { return b[:len(b)/2] }, "meta.json is not valid", false},
		{"meta.json CRC garbled", meta, func(b []byte) []byte {
			// The CRC is base64 in "CRC":"...": change its first letter.
			i := strings.Index(string(b), `"CRC":"`) + len(`"CRC":"`)
			b = append([]byte(nil), b...)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return b
		}, "does not match the CRC", false},
		{"state.bin empty", state, func([]byte) []byte { return nil }, "state.bin has 0 bytes", false},
		{"state.bin torn in half", state, func(b []byte) []byte { return b[:len(b)/2] }, "state.bin has", false},
		{"state.bin garbled, same size", state, flipLetter, "does not match the CRC", false},
		{"state.bin garbled at the start, same size", state, func(b []byte) []byte {
			b = append([]byte(nil), b...)
			b[0] = '['
			return b
		}, "does not match the CRC", false},
		{"state.bin garbled beside an older snapshot", state, flipLetter, "does not match the CRC", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			bad := tc.damage(good)
			if err := os.WriteFile(tc.file, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			// Undone however the case ends, for the next one.
			defer func() {
				if err := os.WriteFile(tc.file, good, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(older); err != nil {
					t.Fatal(err)
				}
			}()
			if tc.beside {
				if err := os.CopyFS(older, os.DirFS(olderCopy)); err != nil {
					t.Fatal(err)
				}
			}
			before := fileSums(t, filepath.Join(p.dir, "snapshots"))
			out, code := startRefused(t, p)
			last := lastLine(out)
			if code != 1 || !strings.HasPrefix(last, "stcached: snapshot "+newest+": ") || !strings.Contains(last, tc.message) ||
				!strings.HasSuffix(last, "; refusing to start (nothing was changed)") {
				t.Errorf("exit %d, last line %q; want 1 and one line naming %s with %q\nfull output:\n%s", code, last, newest, tc.message, out)
			}
			if err := sameSums(before, fileSums(t, filepath.Join(p.dir, "snapshots"))); err != nil {
				t.Errorf("snapshots/ after the refused start: %v", err)
			}
		})
	}
	// Repaired by hand, the node starts with its data.
	p.restart()
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	for k, v := range want {
		p.expect("/get?key="+k, 200, v+"\n")
	}
}

// pollFast checks cond every millisecond until it holds or timeout passes:
// for the short windows of the crash tests (waitFor's 50 ms is too coarse).
func pollFast(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// logSince is p's log from its last start on.
func logSince(p *proc) string {
	log := p.readLog()
	if i := strings.LastIndex(log, "=== start "); i >= 0 {
		return log[i:]
	}
	return log
}

// kill -9 while a snapshot of a large map is being written: the node starts
// again, ignores the half-written snapshot (never loads it) and has every
// acknowledged write, from its previous snapshot and its log.
func TestCrashWhileWritingSnapshot(t *testing.T) {
	skipCrashInShort(t)
	beside(t)
	start := time.Now()
	p := newProc(t, "node1")
	// No snapshots while the map fills (each would write the whole map
	// again); the usual 1 s interval from the restart on.
	p.start("-bootstrap", "-snapshot-interval", "1h")
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	to := func() string { return p.http }

	// A large map, so that writing a snapshot takes long.
	wl := newWriteLog()
	stopFill := wl.writers(16, "fill", crashValueSize, 0, to, nil)
	waitFor(t, 60*time.Second, "a large map", func() error {
		if n := wl.ackedCount(); n < crashFillKeys {
			return fmt.Errorf("%d keys acknowledged", n)
		}
		return nil
	})
	stopFill()
	t.Logf("filled %d keys of %d KiB in %v (%s)", wl.ackedCount(), crashValueSize>>10, time.Since(start).Round(time.Millisecond), wl)
	p.stop()
	p.start("-bootstrap")
	waitLeader(t, 60*time.Second, []*proc{p}, nil)

	// Small writes go on throughout, so entries keep coming (a snapshot is
	// due every 1-2 s) and some are in flight at each crash.
	stopLive := wl.writers(2, "live", 64, 5*time.Millisecond, to, nil)
	defer stopLive()
	// Kill early in the write, and near its end.
	total := int64(crashFillKeys * crashValueSize)
	thresholds := []int64{1 << 20, total * 9 / 10}
	rounds := len(thresholds)
	caught := 0
	seen := map[string]bool{} // .tmp directories left by earlier rounds
	for round := 1; round <= rounds; round++ {
		threshold := thresholds[round-1]
		var tmp string
		var size int64
		roundStart := time.Now()
		if !pollFast(30*time.Second, func() bool {
			entries, _ := os.ReadDir(filepath.Join(p.dir, "snapshots"))
			for _, e := range entries {
				if name := e.Name(); strings.HasSuffix(name, ".tmp") && !seen[name] {
					st, err := os.Stat(filepath.Join(p.dir, "snapshots", name, "state.bin"))
					if err == nil && st.Size() >= threshold {
						tmp, size = name, st.Size()
						return true
					}
				}
			}
			return !p.running()
		}) {
			t.Fatalf("round %d: no snapshot being written within 30 s", round)
		}
		if !p.running() {
			t.Fatalf("round %d: %s exited by itself: %s", round, p.name, exitReason(p))
		}
		p.kill()
		_, err := os.Stat(filepath.Join(p.dir, "snapshots", tmp))
		midWrite := err == nil
		if midWrite {
			caught++
			seen[tmp] = true
		}
		final, _ := os.Stat(filepath.Join(p.dir, "snapshots", tmp, "state.bin"))
		t.Logf("round %d: killed %v in, while %s had %d bytes of state.bin (left on disk: %v, %d bytes)",
			round, time.Since(roundStart).Round(time.Millisecond), tmp, size, midWrite, sizeOf(final))

		p.restart()
		waitServing(t, p)
		waitLeader(t, 60*time.Second, []*proc{p}, nil)
		log := logSince(p)
		if midWrite && !strings.Contains(log, "found temporary snapshot: node=node1 name="+tmp) {
			t.Errorf("round %d: no warning that %s was skipped", round, tmp)
		}
		if midWrite && strings.Contains(log, "starting restore from snapshot: id="+strings.TrimSuffix(tmp, ".tmp")) {
			t.Fatalf("round %d: the half-written snapshot %s was loaded", round, tmp)
		}
		wl.waitHolds(t, p)
		t.Logf("round %d: restarted and verified in %v (%s)", round, time.Since(roundStart).Round(time.Millisecond), wl)
	}
	stopLive()
	if caught == 0 {
		t.Fatalf("no kill landed while a snapshot was being written (%d rounds)", rounds)
	}
	if err := wl.verify(p); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d kills landed mid-snapshot; %s; %v; %s", caught, rounds, wl, time.Since(start).Round(time.Millisecond), snapshotTimes(p))
}

// The snapshot crash test's map: 24 MiB of values, a snapshot that takes
// about half a second to a second to write under -race.
const (
	crashFillKeys  = 384
	crashValueSize = 64 << 10
)

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}

// exitReason is why p exited by itself, from its log: a data race or a Go
// fatal error if it reports one, else its last line.
func exitReason(p *proc) string {
	log := p.readLog()
	for _, what := range []string{"WARNING: DATA RACE", "fatal error:", "panic:"} {
		if i := strings.LastIndex(log, what); i >= 0 {
			line, _, _ := strings.Cut(log[i:], "\n")
			return line + " (see its log)"
		}
	}
	return lastLine(log)
}

// waitServing waits until p answers /status, and fails at once, with its
// last log line, if it exits instead (a node that refuses to start).
func waitServing(t *testing.T, p *proc) {
	t.Helper()
	waitFor(t, 60*time.Second, p.name+" serving", func() error {
		if !p.running() {
			t.Fatalf("%s exited: %s", p.name, exitReason(p))
		}
		_, err := p.status()
		return err
	})
}

// compactedTo is the highest index up to which p's log says it compacted
// its Raft log (0 if it never did).
func compactedTo(p *proc) uint64 {
	var top uint64
	for _, line := range strings.Split(p.readLog(), "\n") {
		if i := strings.Index(line, "compacting logs:"); i >= 0 {
			if j := strings.Index(line, " to="); j > i {
				f := strings.Fields(line[j+len(" to="):])
				if len(f) > 0 {
					if n, err := strconv.ParseUint(f[0], 10, 64); err == nil && n > top {
						top = n
					}
				}
			}
		}
	}
	return top
}

// kill -9 while a lagging follower receives a snapshot (InstallSnapshot:
// the leader compacted its log past the follower): the follower starts
// again, ignores the half-received snapshot, receives it again and then
// holds exactly the leader's map: every acknowledged write, and none of
// the keys deleted while it was away.
func TestCrashWhileInstallingSnapshot(t *testing.T) {
	skipCrashInShort(t)
	beside(t)
	start := time.Now()
	// Few entries kept behind a snapshot, so the leader compacts its log
	// past the stopped follower within seconds.
	const trailing = 16
	c := startCluster(t, 3, func(i int, p *proc) { p.base = append(p.base, "-trailing-logs", strconv.Itoa(trailing)) })
	l := c.leader()
	f := c.followers()[0]
	toLeader := func() string { return nextTarget(c, l.http) }

	// A large map, so the snapshot takes a while to send and write.
	wl := newWriteLog()
	stopFill := wl.writers(16, "fill", crashValueSize, 0, toLeader, c)
	waitFor(t, 60*time.Second, "a large map", func() error {
		if n := wl.ackedCount(); n < crashInstallKeys {
			return fmt.Errorf("%d keys acknowledged", n)
		}
		return nil
	})
	stopFill()

	// Keys the follower holds, in its own snapshot, that are deleted while
	// it is away: a restore that merged the leader's snapshot into the
	// follower's map instead of replacing it would keep them.
	var gone []string
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("gone%d", i)
		l.expect("/set?key="+k+"&value=old", 200, "ok\n")
		gone = append(gone, k)
	}
	waitSnapshot(t, f, l, func(m map[string]string) error {
		if m["gone19"] != "old" {
			return fmt.Errorf("no gone19 in the follower's snapshot")
		}
		return nil
	})
	// Killed for a few seconds only: the leader's retries to a follower
	// that does not answer back off up to 10 s apart.
	f.kill()
	st, err := l.status()
	if err != nil {
		t.Fatal(err)
	}
	behind := st.LastLogIndex // the follower has at most this
	for _, k := range gone {
		l.expect("/delete?key="+k, 200, "ok\n")
	}
	if st, err = l.status(); err != nil {
		t.Fatal(err)
	}
	deleted := st.LastLogIndex
	// Small writes from here on: entries keep coming, so the leader
	// snapshots and compacts, and some are in flight at each crash.
	stopLive := wl.writers(2, "live", 64, 5*time.Millisecond, toLeader, c)
	defer stopLive()
	// Past the deletes too, so the follower can learn of them only from
	// the snapshot.
	waitFor(t, 60*time.Second, "the leader to compact its log past the follower and the deletes", func() error {
		if to := compactedTo(l); to < deleted {
			return fmt.Errorf("compacted to %d; follower has up to %d, deletes up to %d", to, behind, deleted)
		}
		return nil
	})
	t.Logf("filled %d keys of %d KiB, compacted past the follower in %v (%s)", crashInstallKeys, crashValueSize>>10,
		time.Since(start).Round(time.Millisecond), wl)

	// Each restart makes the leader send its snapshot again: kill the
	// follower early in the transfer, then half-way, then let it finish.
	// (Every failed attempt makes the leader back off longer before the
	// next, so few rounds.)
	caught := 0
	seen := map[string]bool{}
	thresholds := []int64{1 << 20, crashInstallKeys * crashValueSize / 2}
	for round, threshold := range thresholds {
		roundStart := time.Now()
		f.restart()
		var tmp string
		var size int64
		if !pollFast(60*time.Second, func() bool {
			entries, _ := os.ReadDir(filepath.Join(f.dir, "snapshots"))
			for _, e := range entries {
				name := e.Name()
				// The follower's own snapshots are at most at behind.
				if !strings.HasSuffix(name, ".tmp") || seen[name] || snapshotIndex(name) <= behind {
					continue
				}
				if st, err := os.Stat(filepath.Join(f.dir, "snapshots", name, "state.bin")); err == nil && st.Size() >= threshold {
					tmp, size = name, st.Size()
					return true
				}
			}
			return !f.running()
		}) {
			t.Fatalf("round %d: no snapshot being received by %s within 60 s", round+1, f.name)
		}
		if !f.running() {
			t.Fatalf("round %d: %s exited by itself: %s", round+1, f.name, exitReason(f))
		}
		f.kill()
		_, err := os.Stat(filepath.Join(f.dir, "snapshots", tmp))
		midWrite := err == nil
		if midWrite {
			caught++
			seen[tmp] = true
		}
		final, _ := os.Stat(filepath.Join(f.dir, "snapshots", tmp, "state.bin"))
		t.Logf("round %d: killed %v after the restart, while %s had %d bytes of state.bin (left on disk: %v, %d bytes)",
			round+1, time.Since(roundStart).Round(time.Millisecond), tmp, size, midWrite, sizeOf(final))
		if !midWrite {
			// The snapshot was in place before the kill: the follower
			// has it now, and the leader may send no other.
			break
		}
	}
	if caught == 0 {
		t.Fatalf("no kill landed while the snapshot was being received (%d rounds)", len(thresholds))
	}

	// The install completes, into the follower's old map.
	f.restart()
	waitServing(t, f)
	c.waitConverged(60 * time.Second)
	log := logSince(f)
	for name := range seen {
		if !strings.Contains(log, "found temporary snapshot: node="+f.name+" name="+name) {
			t.Errorf("no warning that %s was skipped", name)
		}
		if strings.Contains(log, "starting restore from snapshot: id="+strings.TrimSuffix(name, ".tmp")) {
			t.Errorf("the half-received snapshot %s was loaded", name)
		}
	}
	checkAll := func(when string) {
		t.Helper()
		stopLive()
		for _, p := range c.nodes {
			wl.waitHolds(t, p)
			for _, k := range gone {
				if r := p.get("/get?key=" + k); r.code != 404 {
					t.Fatalf("%s: %s, deleted while %s was away, reads %d %q on %s", when, k, f.name, r.code, r.body, p.name)
				}
			}
		}
	}
	checkAll("after the install")

	// Once more, killed after the whole snapshot arrived, while it is
	// being loaded: raft logs "copied to local snapshot" once state.bin
	// is in place, then restores it, then "Installed remote snapshot".
	stopLive = wl.writers(2, "again", 64, 5*time.Millisecond, toLeader, c)
	defer stopLive()
	f.kill()
	if st, err = l.status(); err != nil {
		t.Fatal(err)
	}
	behind = st.LastLogIndex
	waitFor(t, 60*time.Second, "the leader to compact its log past the follower again", func() error {
		if to := compactedTo(l); to <= behind {
			return fmt.Errorf("compacted to %d; follower has up to %d", to, behind)
		}
		return nil
	})
	roundStart := time.Now()
	f.restart()
	if !pollFast(60*time.Second, func() bool {
		return strings.Contains(logSince(f), "copied to local snapshot") || !f.running()
	}) {
		t.Fatalf("no snapshot received by %s within 60 s", f.name)
	}
	if !f.running() {
		t.Fatalf("%s exited by itself: %s", f.name, exitReason(f))
	}
	f.kill()
	loading := !strings.Contains(logSince(f), "Installed remote snapshot")
	t.Logf("round %d: killed %v after the restart, once the whole snapshot was received (install not finished: %v)",
		len(thresholds)+1, time.Since(roundStart).Round(time.Millisecond), loading)
	f.restart()
	waitServing(t, f)
	c.waitConverged(60 * time.Second)
	checkAll("after a crash while loading")
	t.Logf("%d of %d kills landed mid-transfer, and the last one while loading: %v; %s; %v; %s", caught, len(thresholds), loading,
		wl, time.Since(start).Round(time.Millisecond), snapshotTimes(f))
}

// The install crash test's map: 8 MiB of values on three nodes.
const crashInstallKeys = 128

// snapshotTimes sums up, from p's log, how long each snapshot took to write
// (its own: "creating new snapshot" to "snapshot complete"; one received
// from the leader: to "copied to local snapshot").
func snapshotTimes(p *proc) string {
	var out []string
	var began time.Time
	for _, line := range strings.Split(p.readLog(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", f[0])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "creating new snapshot"):
			began = at
		case began.IsZero():
		case strings.Contains(line, "snapshot complete up to"):
			out = append(out, "wrote "+at.Sub(began).String())
			began = time.Time{}
		case strings.Contains(line, "copied to local snapshot"):
			out = append(out, "received "+at.Sub(began).String())
			began = time.Time{}
		}
	}
	return p.name + " snapshots: " + strings.Join(out, ", ")
}

// kill -9 in the middle of the leadership hand-over that SIGTERM starts on
// a leader: the leader itself, then the follower it hands over to (as soon
// as it stands as candidate), then no one (the hand-over completes). Writes
// go on throughout. After the restarts the cluster converges, and every
// node holds every acknowledged write and none that was refused.
func TestCrashDuringLeadershipTransfer(t *testing.T) {
	skipCrashInShort(t)
	start := time.Now()
	c := startCluster(t, 3, nil)
	wl := newWriteLog()
	stop := wl.writers(8, "t", 256, 2*time.Millisecond, func() string { return nextTarget(c, "") }, c)
	defer stop()

	caught := 0
	victims := []string{"leader", "target", "none"}
	for round, victim := range victims {
		l := c.leader()
		from := wl.ackedCount()
		waitFor(t, 30*time.Second, "writes before the SIGTERM", func() error {
			if n := wl.ackedCount(); n < from+100 {
				return fmt.Errorf("%d acknowledged", n-from)
			}
			return nil
		})
		offsets := map[*proc]int{}
		for _, p := range c.nodes {
			offsets[p] = len(p.readLog())
		}
		since := func(p *proc) string { return p.readLog()[offsets[p]:] }
		l.signal(syscall.SIGTERM)
		if !pollFast(20*time.Second, func() bool {
			return strings.Contains(since(l), "handing leadership over before stopping") || !l.running()
		}) || !strings.Contains(since(l), "handing leadership over before stopping") {
			t.Fatalf("round %d: %s did not start handing leadership over after SIGTERM (running: %v)", round+1, l.name, l.running())
		}
		handing := time.Now()
		var took time.Duration
		var dead []*proc
		mid := false
		switch victim {
		case "leader":
			l.kill()
			took = time.Since(handing)
			// It had not stepped down yet: the hand-over was under way.
			mid = !strings.Contains(since(l), "entering follower state")
			dead = append(dead, l)
		case "target":
			var target *proc
			pollFast(10*time.Second, func() bool {
				for _, p := range c.nodes {
					if p != l && strings.Contains(since(p), "entering candidate state") {
						target = p
						return true
					}
				}
				return false
			})
			if target == nil {
				t.Fatalf("round %d: no follower stood as candidate after %s began handing over", round+1, l.name)
			}
			target.kill()
			took = time.Since(handing)
			mid = !strings.Contains(since(target), "election won")
			dead = append(dead, target)
			fallthrough
		case "none":
			// The old leader finishes its stop (a failed hand-over is
			// logged, not fatal): exit 0.
			waitFor(t, 30*time.Second, l.name+" to exit after SIGTERM", func() error {
				if l.running() {
					return fmt.Errorf("still running")
				}
				return nil
			})
			if err := l.exitError(); err != nil {
				t.Fatalf("round %d: %s exit after SIGTERM: %v", round+1, l.name, err)
			}
			if log := since(l); victim == "none" && (strings.Contains(log, "leadership transfer failed") ||
				strings.Contains(log, "leadership transfer did not finish")) {
				t.Fatalf("round %d: the hand-over failed:\n%s", round+1, log)
			}
			dead = append(dead, l)
		}
		if mid {
			caught++
		}
		if victim == "none" {
			t.Logf("round %d: SIGTERM to leader %s, hand-over completed, exit 0 (%s)", round+1, l.name, wl)
		} else {
			t.Logf("round %d: SIGTERM to leader %s, killed the %s %v after the hand-over began (mid-transfer: %v; %s)",
				round+1, l.name, victim, took.Round(time.Microsecond), mid, wl)
		}
		for _, p := range dead {
			p.restart()
		}
		for _, p := range dead {
			waitServing(t, p)
		}
		c.waitConverged(60 * time.Second)
	}
	stop()
	for _, p := range c.nodes {
		wl.waitHolds(t, p)
	}
	if caught == 0 {
		t.Fatalf("no kill landed during a hand-over")
	}
	t.Logf("%d of %d kills landed mid-transfer; %s; %v", caught, 2, wl, time.Since(start).Round(time.Millisecond))
}
