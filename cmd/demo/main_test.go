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
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePorts returns n loopback addresses free now, from below the kernel's
// usual ephemeral range (so no outgoing connection takes one meanwhile).
func freePorts(t *testing.T, n int) []string {
	var addrs []string
	seen := map[int]bool{}
	for len(addrs) < n {
		port := 20000 + rand.IntN(12000)
		if seen[port] {
			continue
		}
		seen[port] = true
		a := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		l.Close()
		addrs = append(addrs, a)
	}
	return addrs
}

// make demo AUTO=1, on a cluster of its own: every step runs and its check
// passes (write, follower reads, a refused write, a stale read, snapshots,
// restart from a snapshot, leader kill and election, the old leader back).
func TestDemoAuto(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "stcached")
	if out, err := exec.Command("go", "build", "-o", bin, "../..").CombinedOutput(); err != nil {
		t.Fatalf("build stcached: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "cluster")
	ports := freePorts(t, 6)
	t.Cleanup(func() {
		for i := 1; i <= 3; i++ {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.pid", i)))
			if err != nil {
				continue
			}
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-auto", "-bin", bin, "-dir", dir,
		"-http", strings.Join(ports[:3], ","), "-raft", strings.Join(ports[3:], ","),
		"-node-flags", "-snapshot-interval 1s"}, strings.NewReader(""), &out)
	if err != nil {
		for i := 1; i <= 3; i++ {
			log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
			t.Logf("---- node%d.log ----\n%s", i, log)
		}
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	if n := strings.Count(text, "\n== "); n != 8 {
		t.Fatalf("%d steps, want 8:\n%s", n, text)
	}
	for _, want := range []string{"answers world", "307", "snapshot holding the keys", "restarted and serves k2=v2", "leads now and takes writes", "is a follower of"} {
		if !strings.Contains(text, want) {
			t.Fatalf("output lacks %q:\n%s", want, text)
		}
	}
	t.Log(text)
}
