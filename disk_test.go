package main

// A full disk. Every node's data dir is a tmpfs of its own, mounted in a
// private mount namespace that the test creates (unshare -m) and that only
// the test's nodes live in: nothing on the machine sees those mounts, and
// they vanish with the namespace. "Full" is a filler file written until the
// tmpfs says ENOSPC; "freed" is the filler deleted.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// diskFSSize is each node's tmpfs: room for the log, the stable store and
// two snapshots of the test's ~0.5 MiB state, many times over.
const diskFSSize = 16 << 20

// diskNS is a private mount namespace held open by a sleeping process
// (a namespace dies with its last process, and the nodes are killed and
// restarted). The nodes run in it through nsenter; the test reaches their
// files through /proc/<holder>/root.
type diskNS struct {
	t   *testing.T
	pid int
}

// needMountNS skips the test where it cannot run (not Linux, not root, no
// util-linux, no permission to unshare), saying why; with CI=true it fails
// instead, because CI runs as root and must run it.
func needMountNS(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("full-disk test cannot run: %s (CI runs as root and must run it)", why)
	}
	t.Skipf("full-disk test skipped: %s (it needs root and util-linux's unshare, nsenter and mount; under CI=true this is a failure)", why)
}

func newDiskNS(t *testing.T) *diskNS {
	t.Helper()
	switch {
	case runtime.GOOS != "linux":
		needMountNS(t, "mount namespaces and tmpfs are Linux's")
	case os.Geteuid() != 0:
		needMountNS(t, "not running as root")
	}
	for _, tool := range []string{"unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			needMountNS(t, tool+" is not on PATH")
		}
	}
	// Bounded, in case the test binary dies without its cleanups.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "900")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		needMountNS(t, "unshare: "+err.Error())
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // its exit status says nothing
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	ns := &diskNS{t: t, pid: cmd.Process.Pid}
	// unshare execs sleep once the namespace is made private.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			needMountNS(t, "unshare -m failed: "+strings.TrimSpace(stderr.String()))
		default:
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ns.pid)); err == nil && string(b) == "sleep\n" {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("unshare -m: no namespace after 10s: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs a command inside the namespace.
func (ns *diskNS) run(args ...string) {
	ns.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(ns.pid), "-m", "--"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		needMountNS(ns.t, fmt.Sprintf("%s: %v: %s", strings.Join(args, " "), err, out))
	}
}

// view is where the test sees path as the namespace does.
func (ns *diskNS) view(path string) string { return fmt.Sprintf("/proc/%d/root%s", ns.pid, path) }

// mount puts a fresh tmpfs of diskFSSize at p's data dir.
func (ns *diskNS) mount(p *proc) {
	ns.t.Helper()
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		ns.t.Fatal(err)
	}
	ns.run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", diskFSSize), "tmpfs", p.dir)
	// The node runs in the namespace: nsenter execs the daemon there.
	p.wrap = []string{"nsenter", "-t", strconv.Itoa(ns.pid), "-m", "--"}
	// The namespace sees the tmpfs there; the rest of the machine does not.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.pid))
	if err != nil {
		ns.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p.dir && strings.Contains(line, " - tmpfs ") {
			return
		}
	}
	ns.t.Fatalf("%s: no tmpfs at %s in the namespace:\n%s", p.name, p.dir, b)
}

// fill grows p's filler file until the file system is full, then gives
// back leave bytes.
func (ns *diskNS) fill(p *proc, leave int64) {
	ns.t.Helper()
	f, err := os.OpenFile(ns.view(filepath.Join(p.dir, "filler")), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		ns.t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		ns.t.Fatalf("%s: fill: %v", p.name, err)
	}
	if leave > 0 {
		st, err := f.Stat()
		if err != nil {
			ns.t.Fatal(err)
		}
		if err := f.Truncate(st.Size() - leave); err != nil {
			ns.t.Fatal(err)
		}
	}
}

// unfill deletes p's filler.
func (ns *diskNS) unfill(p *proc) {
	ns.t.Helper()
	if err := os.Remove(ns.view(filepath.Join(p.dir, "filler"))); err != nil {
		ns.t.Fatal(err)
	}
}

// diskSnapshot is a node's one finished snapshot, checked the way raft
// checks it when it opens it: meta.json parses, state.bin has the size and
// the CRC that meta.json records, and it decodes.
type diskSnapshot struct {
	id    string
	index uint64
	state map[string]string
	tmp   []string // unfinished snapshot directories beside it
}

func readDiskSnapshot(dir string) (diskSnapshot, error) {
	var s diskSnapshot
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil {
		return s, err
	}
	var ids []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			s.tmp = append(s.tmp, e.Name())
		} else {
			ids = append(ids, e.Name())
		}
	}
	if len(ids) != 1 {
		return s, fmt.Errorf("want one finished snapshot, found %v (and unfinished %v)", ids, s.tmp)
	}
	s.id = ids[0]
	b, err := os.ReadFile(filepath.Join(dir, "snapshots", s.id, "meta.json"))
	if err != nil {
		return s, err
	}
	var meta struct {
		raft.SnapshotMeta
		CRC []byte
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return s, fmt.Errorf("snapshot %s: meta.json: %v", s.id, err)
	}
	s.index = meta.Index
	state, err := os.ReadFile(filepath.Join(dir, "snapshots", s.id, "state.bin"))
	if err != nil {
		return s, err
	}
	if int64(len(state)) != meta.Size {
		return s, fmt.Errorf("snapshot %s: state.bin has %d bytes, meta.json says %d", s.id, len(state), meta.Size)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(state)
	if !bytes.Equal(h.Sum(nil), meta.CRC) {
		return s, fmt.Errorf("snapshot %s: state.bin's CRC is not meta.json's", s.id)
	}
	if err := json.Unmarshal(state, &s.state); err != nil {
		return s, fmt.Errorf("snapshot %s: state.bin: %v", s.id, err)
	}
	return s, nil
}

// diskWrites sends writes with a short timeout and remembers every one
// answered ok, after checking that a quorum had stored it.
type diskWrites struct {
	t      *testing.T
	nodes  []*proc
	client *http.Client
	acked  map[string]string
	keys   []string // acked, in order
}

// set writes key=value through p; ok reports a 200 "ok". An ok must carry
// the entry's log index, and at that moment two nodes must hold the entry
// in their logs: raft counts a node toward a commit only once the entry is
// on its disk (last_log_index moves after the store returns), so a correct
// node never fails this, whereas an ok given before the entry is stored on
// a quorum does.
func (w *diskWrites) set(p *proc, key, value string) (ok bool, outcome string) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+p.http+"/set", strings.NewReader("key="+key+"&value="+value))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := exchange(w.client, req)
	switch {
	case err != nil:
		return false, "no answer"
	case r.code != 200 || r.body != "ok\n":
		return false, fmt.Sprintf("%d %s", r.code, strings.TrimSpace(r.body))
	}
	w.acked[key] = value
	w.keys = append(w.keys, key)
	index, err := strconv.ParseUint(r.header.Get("X-Raft-Index"), 10, 64)
	if err != nil || index == 0 {
		w.t.Errorf("write %s answered ok by %s without its log index (X-Raft-Index %q)", key, p.name, r.header.Get("X-Raft-Index"))
		return true, "ok"
	}
	var have []string
	for _, q := range w.nodes {
		if s, err := q.status(); err == nil && s.LastLogIndex >= index {
			have = append(have, q.name)
		}
	}
	if len(have) < len(w.nodes)/2+1 {
		w.t.Errorf("write %s answered ok by %s at index %d, but only %v hold that index", key, p.name, index, have)
	}
	return true, "ok"
}

// mustSet writes through p, or, if p has stopped leading meanwhile (an
// election on a loaded machine: the leader missed its followers for a
// second), through whichever node leads within 20 s: such a write is not
// what the test is about.
func (w *diskWrites) mustSet(p *proc, key, value string) {
	w.t.Helper()
	ok, outcome := w.set(p, key, value)
	if ok {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for !ok && (strings.HasPrefix(outcome, "307 ") || strings.HasPrefix(outcome, "503 ")) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // a poll for the next leader
		if l := diskLeader(w.nodes); l != nil {
			w.t.Logf("write %s through %s: %s; %s leads now, writing through it", key, p.name, outcome, l.name)
			p = l
			ok, outcome = w.set(p, key, value)
		}
	}
	if !ok {
		w.t.Fatalf("write %s through %s: %s, want ok", key, p.name, outcome)
	}
}

// diskLeader is the node that leads and takes writes now, or nil.
func diskLeader(nodes []*proc) *proc {
	for _, p := range nodes {
		if s, err := p.status(); err == nil && s.State == "Leader" && s.Writable {
			return p
		}
	}
	return nil
}

// diskAllRunning fails the test if a node has exited, with what it printed.
func diskAllRunning(t *testing.T, nodes []*proc, when string) {
	t.Helper()
	for _, p := range nodes {
		if !p.running() {
			log := logSince(p)
			if len(log) > 3000 {
				log = log[len(log)-3000:]
			}
			t.Fatalf("%s: %s exited (%v); its log ends:\n%s", when, p.name, p.exitError(), log)
		}
	}
}

// diskHasValue is nil when p's own (stale) read of key gives want.
func diskHasValue(p *proc, key, want string) error {
	r, err := p.call("/get?key=" + key)
	if err != nil {
		return err
	}
	if r.code != 200 || r.body != want+"\n" {
		return fmt.Errorf("%s: %s = %d %.40q, want %.40q", p.name, key, r.code, r.body, want)
	}
	return nil
}

// TestFullDisk runs three nodes on 16 MiB tmpfs data dirs and fills them:
//
//  1. one follower's disk too small for a snapshot: its snapshots fail, the
//     one it had stays intact and nothing of the failed ones stays behind;
//     killed and restarted there, it restores from that snapshot;
//  2. that follower's disk full: writes go on (the other two are a quorum);
//  3. its space freed: it catches up, no restart;
//  4. the leader's disk full: it cannot store its entries, so it cannot
//     commit; writes go on through another leader;
//  5. two of three disks full, the leader's healthy: no write is ok unless
//     a quorum stored it (checked at each ok, and by killing that leader);
//  6. space freed: the two nodes take writes again without a restart;
//  7. every node restarted: every acknowledged write is there.
//
// Throughout, stale reads answer on every node and no node exits. It needs
// Linux, root and util-linux (unshare, nsenter, mount); elsewhere it skips
// and says why, except under CI=true, where that is a failure (CI runs as
// root). It is skipped in -short mode.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("the full-disk test takes half a minute; skipped in -short mode")
	}
	beside(t)
	began := time.Now()
	ns := newDiskNS(t)
	nodes := make([]*proc, 3)
	for i := range nodes {
		nodes[i] = newProc(t, fmt.Sprintf("node%d", i+1))
		ns.mount(nodes[i])
	}
	c := &cluster{t: t, nodes: nodes}
	nodes[0].start("-bootstrap")
	for _, p := range nodes[1:] {
		p.start("-join", nodes[0].http)
	}
	c.waitConverged(60 * time.Second)
	w := &diskWrites{t: t, nodes: nodes, acked: map[string]string{}, client: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	big := func(i int) string { return fmt.Sprintf("%d-%s", i, strings.Repeat("b", 64<<10)) }
	val := func(key string) string { return key + "-" + strings.Repeat("v", 16<<10) } // larger than a BoltDB page

	// A state of about 0.5 MiB, in a snapshot on every node.
	leader := c.leader()
	for i := range 8 {
		w.mustSet(leader, fmt.Sprintf("big%d", i), big(i))
	}
	for _, p := range nodes {
		view := &proc{t: t, name: p.name, dir: ns.view(p.dir)}
		waitSnapshot(t, view, leader, func(m map[string]string) error {
			if m["big7"] != big(7) {
				return errors.New("big7 not in it yet")
			}
			return nil
		})
	}
	t.Logf("cluster up, 0.5 MiB written and in every node's snapshot after %v", time.Since(began).Round(time.Millisecond))

	// Phase 1: a follower's disk has room for log entries but not for a
	// new snapshot. Its snapshots fail; the one it had stays intact, and it
	// restarts from it.
	f := c.followers()[0]
	// No snapshot under way (one is due at 2 entries past the last), so
	// the one on disk now is the one that must survive.
	var before diskSnapshot
	waitFor(t, 20*time.Second, f.name+"'s snapshot to settle", func() error {
		s, err := f.status()
		if err != nil {
			return err
		}
		if s.LastLogIndex >= s.LastSnapshotIndex+2 {
			return fmt.Errorf("snapshot at %d, log at %d", s.LastSnapshotIndex, s.LastLogIndex)
		}
		if before, err = readDiskSnapshot(ns.view(f.dir)); err == nil && before.index != s.LastSnapshotIndex {
			err = fmt.Errorf("snapshot on disk at %d, raft reports %d", before.index, s.LastSnapshotIndex)
		}
		return err
	})
	noSpace := func() int {
		n := 0
		for _, line := range strings.Split(logSince(f), "\n") {
			if strings.Contains(line, "failed to take snapshot") && strings.Contains(line, "no space left on device") {
				n++
			}
		}
		return n
	}
	failed := noSpace()
	ns.fill(f, 192<<10)
	for i := range 3 {
		w.mustSet(leader, fmt.Sprintf("tight%d", i), "small")
	}
	waitFor(t, 20*time.Second, f.name+"'s snapshot to fail for lack of space", func() error {
		if noSpace() > failed {
			return nil
		}
		return errors.New("no failed snapshot yet")
	})
	after, err := readDiskSnapshot(ns.view(f.dir))
	if err != nil {
		t.Fatalf("%s after a snapshot failed for lack of space: %v", f.name, err)
	}
	if after.id != before.id || after.state["big7"] != big(7) {
		t.Fatalf("%s: snapshot %s (big7 %v) became %s (big7 %v)", f.name, before.id, before.state["big7"] == big(7), after.id, after.state["big7"] == big(7))
	}
	// Nor does the failed one stay behind, holding the space it took (each
	// attempt, every 1-2 s, fails in a moment: none is left between them).
	waitFor(t, 10*time.Second, f.name+"'s failed snapshots to be cleaned up", func() error {
		s, err := readDiskSnapshot(ns.view(f.dir))
		if err == nil && len(s.tmp) > 0 {
			err = fmt.Errorf("unfinished snapshots left behind: %v", s.tmp)
		}
		return err
	})
	t.Logf("phase 1: %s's snapshots fail for lack of space; %s intact", f.name, after.id)
	f.kill()
	f.restart()
	waitFor(t, 30*time.Second, f.name+" to restart from "+before.id+" on its tight disk", func() error {
		diskAllRunning(t, nodes, "restart on a tight disk")
		if log := logSince(f); !strings.Contains(log, "restored from snapshot: id="+before.id) {
			return errors.New("not restored from it (yet)")
		}
		return diskHasValue(f, "tight2", "small")
	})

	// Phase 2: that follower's disk is full. The other two are a quorum.
	ns.fill(f, 0)
	for i := range 4 {
		w.mustSet(leader, fmt.Sprintf("full1-%d", i), val(fmt.Sprintf("full1-%d", i)))
	}
	for _, p := range nodes {
		if err := diskHasValue(p, "tight2", "small"); err != nil {
			t.Fatalf("read while %s's disk is full: %v", f.name, err)
		}
	}
	diskAllRunning(t, nodes, "one follower's disk full")
	lag := diskHasValue(f, "full1-3", val("full1-3"))
	t.Logf("phase 2: %s's disk full: 4 writes ok through %s; %s lags: %v", f.name, leader.name, f.name, lag)

	// Phase 3: space freed; the follower catches up, no restart.
	ns.unfill(f)
	freed := time.Now()
	waitFor(t, 30*time.Second, f.name+" to catch up after space was freed", func() error {
		return diskHasValue(f, "full1-3", val("full1-3"))
	})
	t.Logf("phase 3: %s caught up %v after its space was freed", f.name, time.Since(freed).Round(time.Millisecond))
	w.mustSet(leader, "mark", "3")
	for _, p := range nodes {
		waitValue(t, p, "mark", "3")
	}

	// Phase 4: the leader's disk is full. Once BoltDB needs a page its file
	// does not have, the leader cannot store its own entries, and
	// hashicorp/raft steps down on that; it may win the next election and
	// step down again (its log is as long as the others'), until another
	// node wins and writes go on through the two that can store them.
	old := leader
	if l := diskLeader(nodes); l != nil {
		old = l // leadership may have moved under load since phase 1
	}
	stepDowns := strings.Count(logSince(old), "failed to commit logs")
	ns.fill(old, 0)
	filled := time.Now()
	outcomes := map[string]int{}
	var next *proc
	n := 0
	waitFor(t, 30*time.Second, "a write ok through another leader", func() error {
		n++
		key := fmt.Sprintf("full2-%d", n)
		l := diskLeader(nodes)
		if l == nil {
			l = old
		}
		ok, outcome := w.set(l, key, val(key))
		outcomes[l.name+": "+outcome]++
		if ok && l != old {
			next = l
			return nil
		}
		return fmt.Errorf("%s through %s", outcome, l.name)
	})
	t.Logf("phase 4: %s's disk full: writes ok through %s after %v; %s stepped down %d times; attempts: %v", old.name, next.name,
		time.Since(filled).Round(time.Millisecond), old.name, strings.Count(logSince(old), "failed to commit logs")-stepDowns, outcomes)
	if err := diskHasValue(old, "mark", "3"); err != nil {
		t.Fatalf("read on %s with its disk full: %v", old.name, err)
	}
	diskAllRunning(t, nodes, "the leader's disk full")

	// Phase 5: a majority's disks are full: the old leader's and now the
	// other follower's. The new leader is healthy and keeps its followers
	// (they answer heartbeats), so writes wait for a quorum that cannot
	// store them. A write may still be ok if a follower's BoltDB stores it
	// in pages its file already has (freed by earlier transactions): then
	// two disks do hold it. Each ok is checked as it comes (set); then the
	// healthy leader is killed, taking its disk with it, so an ok that only
	// its disk held is lost, and the end of the test finds it missing.
	var third *proc
	for _, p := range nodes {
		if p != old && p != next {
			third = p
		}
	}
	ns.fill(third, 0)
	outcomes = map[string]int{}
	notOK := 0
	client := w.client
	w.client = &http.Client{Timeout: 2 * time.Second, CheckRedirect: client.CheckRedirect}
	for start := time.Now(); time.Since(start) < 4*time.Second; {
		n++
		key := fmt.Sprintf("full3-%d", n)
		l := diskLeader(nodes)
		if l == nil {
			l = next
		}
		ok, outcome := w.set(l, key, val(key))
		outcomes[l.name+": "+outcome]++
		if !ok {
			notOK++
		}
		if outcome != "no answer" {
			time.Sleep(100 * time.Millisecond) // pace the attempts (not a wait for anything)
		}
	}
	w.client = client
	t.Logf("phase 5: %s and %s full: attempts: %v", old.name, third.name, outcomes)
	// A write that waits, sent once the attempts above hang (BoltDB's
	// reusable pages are used up): it must be answered (a 5xx: it may
	// still commit) once the node's commit timeout passes, not hang for
	// as long as the disks stay full.
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, "http://"+next.http+"/set", strings.NewReader("key=waits&value=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := exchange(&http.Client{Timeout: 2*applyTimeout + 5*time.Second}, req)
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err != nil:
		t.Errorf("a write to %s with a majority's disks full was not answered in %v: %v", next.name, took, err)
	case r.code == http.StatusOK:
		w.acked["waits"] = "1" // stored on a quorum after all: it must survive
		w.keys = append(w.keys, "waits")
	case r.code < 500:
		t.Errorf("a write with a majority's disks full: %d %q, want a 5xx (it may still commit)", r.code, r.body)
	default:
		t.Logf("phase 5: a write that waited was answered %d %q after %v", r.code, strings.TrimSpace(r.body), took)
	}
	if notOK == 0 {
		t.Errorf("with two of three disks full, every write was ok")
	}
	for _, p := range nodes {
		if err := diskHasValue(p, "mark", "3"); err != nil {
			t.Fatalf("read while a majority's disks are full: %v", err)
		}
	}
	diskAllRunning(t, nodes, "a majority's disks full")
	next.kill()

	// Phase 6: space freed; the two nodes that were full take writes again
	// without a restart (they are a quorum), then the third comes back.
	ns.unfill(old)
	ns.unfill(third)
	freed = time.Now()
	waitFor(t, 40*time.Second, "a write ok after space was freed", func() error {
		n++
		key := fmt.Sprintf("freed-%d", n)
		l := diskLeader(nodes)
		if l == nil {
			return errors.New("no leader")
		}
		if ok, outcome := w.set(l, key, val(key)); !ok {
			return fmt.Errorf("%s through %s", outcome, l.name)
		}
		return nil
	})
	t.Logf("phase 6: space freed: writes ok again after %v (%s down)", time.Since(freed).Round(time.Millisecond), next.name)
	next.restart()
	last := w.keys[len(w.keys)-1]
	for _, p := range nodes {
		waitValue(t, p, last, w.acked[last])
	}

	// Phase 7: every node restarted; every acknowledged write is there.
	for _, p := range nodes {
		p.stop()
	}
	for _, p := range nodes {
		p.restart()
	}
	c.waitConverged(60 * time.Second)
	leader = c.leader()
	for _, p := range nodes {
		waitValue(t, p, last, w.acked[last])
		for _, k := range w.keys {
			if err := diskHasValue(p, k, w.acked[k]); err != nil {
				t.Errorf("acknowledged write lost: %v", err)
			}
		}
		waitFor(t, 10*time.Second, p.name+"'s snapshot after the restart", func() error {
			s, err := readDiskSnapshot(ns.view(p.dir))
			if err == nil && len(s.tmp) > 0 {
				err = fmt.Errorf("unfinished snapshots left behind: %v", s.tmp)
			}
			return err
		})
	}
	if r := leader.get("/get?key=" + last + "&consistency=strong"); r.code != 200 {
		t.Errorf("strong read after the restart: %d %q", r.code, r.body)
	}
	t.Logf("%d writes acknowledged; every node restarted; test took %v", len(w.keys), time.Since(began).Round(time.Millisecond))
}
