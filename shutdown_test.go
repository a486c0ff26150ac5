package main

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowRequest opens a POST /set whose body never finishes arriving, so its
// handler stays in flight; the connection closes with the test.
func slowRequest(t *testing.T, p *proc) {
	t.Helper()
	conn, err := net.Dial("tcp", p.http)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /set HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nkey=a&value=", p.http)
	if err != nil {
		t.Fatal(err)
	}
}

func waitLog(t *testing.T, p *proc, line string) {
	t.Helper()
	waitFor(t, 20*time.Second, p.name+" to log "+line, func() error {
		if !strings.Contains(p.readLog(), line) {
			return errors.New("not yet")
		}
		return nil
	})
}

// A request that stays in flight (a client that never finishes its body)
// must not turn a SIGTERM into a failed stop: the drain gives up on it and
// the node still exits 0. Before, the HTTP drain's timeout made it exit 1.
func TestStopWithRequestInFlightExitsZero(t *testing.T) {
	p := newProc(t, "node1")
	p.start("-bootstrap")
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	p.expect("/set?key=k&value=v", 200, "ok\n")
	slowRequest(t, p)
	p.stop() // fails unless the exit code is 0
	if !strings.Contains(p.readLog(), "stopped cleanly") {
		t.Fatalf("no clean stop logged")
	}
}

// A second signal ends a stop that is taking long, at once.
func TestSecondSignalForcesExit(t *testing.T) {
	p := newProc(t, "node1")
	p.start("-bootstrap")
	waitLeader(t, 30*time.Second, []*proc{p}, nil)
	slowRequest(t, p) // holds the drain for its 5 s
	p.signal(syscall.SIGTERM)
	waitLog(t, p, "signal received, shutting down")
	start := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after a second SIGTERM")
	}
	var ee *exec.ExitError
	if err := p.exitError(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit after second signal: %v, want code 1", err)
	}
	if !strings.Contains(p.readLog(), "second signal: exiting now") {
		t.Fatalf("forced exit not logged")
	}
	// It did not wait out the drain (5 s) first.
	if d := time.Since(start); d > httpDrain {
		t.Fatalf("forced exit took %v", d)
	}
}
