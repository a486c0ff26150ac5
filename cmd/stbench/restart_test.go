package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// lastSnapshot pairs raft's own start and completion lines, the last pair
// winning, and ignores everything else in a node's log.
func TestLastSnapshot(t *testing.T) {
	log := `2026-11-25T22:44:00.000Z [INFO]  raft: starting snapshot up to: node=node1 index=100
2026-11-25T22:44:00.250Z [INFO]  raft: snapshot complete up to: node=node1 index=100
not a log line
2026-11-25T22:44:20.000Z [INFO]  raft: starting snapshot up to: node=node1 index=10642
2026-11-25T22:44:20.002Z [INFO]  http: something else: node=node1
2026-11-25T22:44:21.500Z [INFO]  raft: snapshot complete up to: node=node1 index=10642
2026-11-25T22:44:40.000Z [INFO]  raft: starting snapshot up to: node=node1 index=20000
`
	p := filepath.Join(t.TempDir(), "node1.log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	d, index, ok := lastSnapshot(p)
	if !ok || d != 1500*time.Millisecond || index != "10642" {
		t.Errorf("lastSnapshot = %v, %q, %v; want 1.5s, \"10642\", true", d, index, ok)
	}
	if _, _, ok := lastSnapshot(filepath.Join(t.TempDir(), "missing.log")); ok {
		t.Error("a missing log reported a snapshot")
	}
}
