package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeRun returns a port p such that p..p+n-1 are free on 127.0.0.1 now,
// from below the kernel's usual ephemeral range (so no outgoing connection
// takes one meanwhile) and above the ports browsers refuse (the supervisor
// refuses them).
func freeRun(t *testing.T, n int, taken map[int]bool) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		ok := true
		for i := range n {
			if taken[p+i] {
				ok = false
				break
			}
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			for i := range n {
				taken[p+i] = true
			}
			return p
		}
	}
	t.Fatalf("no run of %d free ports", n)
	return 0
}

// startLab builds stcached and the lab supervisor and runs them as make
// cluster does (three -lab nodes keeping 128 entries behind a snapshot),
// with snapshots checked every second so the tutorial's snapshot step is
// quick. It returns the supervisor's address and the cluster directory;
// every process is stopped at the end.
func startLab(t *testing.T) (lab, dir string) {
	t.Helper()
	tmp := t.TempDir()
	bin, stlab := filepath.Join(tmp, "stcached"), filepath.Join(tmp, "stlab")
	for out, pkg := range map[string]string{bin: "../..", stlab: "../stlab"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	dir = filepath.Join(tmp, "cluster")
	taken := map[int]bool{}
	httpBase, raftBase := freeRun(t, 3, taken), freeRun(t, 3, taken)
	lab = fmt.Sprintf("127.0.0.1:%d", freeRun(t, 1, taken))
	cmd := exec.Command(stlab, "-bin", bin, "-dir", dir, "-n", "3", "-addr", lab,
		"-http-base", strconv.Itoa(httpBase), "-raft-base", strconv.Itoa(raftBase),
		"-node-flags", "-lab -trailing-logs 128 -snapshot-interval 1s")
	logf, err := os.Create(filepath.Join(tmp, "stlab.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		for i := 1; i <= 3; i++ {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.pid", i)))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGCONT)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(tmp, "stlab.log"))
			t.Logf("---- stlab.log ----\n%s", b)
			for i := 1; i <= 3; i++ {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("---- node%d.log (tail) ----\n%s", i, b)
			}
		}
	})
	// The supervisor answers once it listens; the demo waits for the rest.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", lab)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the supervisor does not listen on %s: %v", lab, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return lab, dir
}

// make demo AUTO=1, on a lab of its own: the tutorial's section 4 (write,
// follower reads, a refused write, a stale read, snapshots, restart from a
// snapshot, leader kill and election, the old leader back), then every
// lesson of ui/lessons.json, each step's outcome checked on the cluster, in
// the order and with the words of lessons.json.
func TestDemoAuto(t *testing.T) {
	lab, dir := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	d, err := newDemo(ctx, []string{"-auto", "-lab", lab, "-dir", dir}, strings.NewReader(""), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer d.kv.Close()
	start := time.Now()
	if err := d.walk(ctx); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Logf("the walk took %v", time.Since(start).Round(time.Second))
	text := out.String()
	for _, want := range []string{"answers world", "307", "snapshot holding the keys", "restarted and serves k2=v2", "leads now and takes writes", "is a follower of"} {
		if !strings.Contains(text, want) {
			t.Fatalf("output lacks %q:\n%s", want, text)
		}
	}
	src := repoLessons(t)
	if !slices.Equal(d.walked, src.stepIDs()) {
		t.Fatalf("walked the steps %v, want lessons.json's %v", d.walked, src.stepIDs())
	}
	// Each step said its words from lessons.json: the text up to the first
	// placeholder of its intro and of its outcome, in order.
	rest := text
	for _, l := range src.Lessons {
		for _, s := range l.Steps {
			for _, words := range []string{s.Intro, s.Outcome} {
				head, _ := fill(placeholder.Split(words, 2)[0], nil)
				head = strings.Join(strings.Fields(head), " ")
				flat := strings.Join(strings.Fields(rest), " ")
				i := strings.Index(flat, head)
				if i < 0 {
					t.Fatalf("step %s: the demo did not say %q (in order):\n%s", s.ID, head, text)
				}
				// Go on from there, in the unwrapped text.
				rest = strings.Join(strings.Fields(rest), " ")[i+len(head):]
			}
		}
	}
	if strings.Contains(text, "✗") {
		t.Fatalf("a step did not have its expected outcome:\n%s", text)
	}
	t.Log(text)
}
