package main

// The processes: which nodes exist, which of them this supervisor started,
// and the four things it may do to those (and only those).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// node is one member of make cluster's cluster.
type node struct {
	name, http, raft string
	args             []string // its command line after the binary: the same on every start

	// Guarded by lab.mu.
	cmd    *exec.Cmd     // the process this supervisor started, until it has exited
	done   chan struct{} // closed once cmd has exited and been reaped
	frozen bool          // sent SIGSTOP, no SIGCONT since
	exit   string        // how the last process this supervisor started ended, until the next start
}

// lab owns the nodes it started.
type lab struct {
	bin, dir string
	addr     string // where the page is served (-addr)
	nodes    []*node
	log      hclog.Logger
	client   *http.Client // for the nodes' /lab/heal

	act sync.Mutex // one action at a time: a restart and a crash of one node do not interleave
	mu  sync.Mutex // guards the nodes' process fields
}

// Node states, as the API reports them.
const (
	stateRunning = "running"
	stateFrozen  = "frozen"
	stateStopped = "stopped"
)

// newLab lays out the nodes as make cluster does: node1 bootstraps, the
// others join it, all on 127.0.0.1, and each accepts this page's origin.
func newLab(c *config, log hclog.Logger) *lab {
	l := &lab{bin: c.bin, dir: c.dir, addr: c.addr, log: log, client: &http.Client{Timeout: 2 * time.Second}}
	allow := strings.Join(pageOrigins(c.addr), ",")
	for i := 1; i <= c.n; i++ {
		n := &node{
			name: fmt.Sprintf("node%d", i),
			http: fmt.Sprintf("127.0.0.1:%d", c.httpBase+i-1),
			raft: fmt.Sprintf("127.0.0.1:%d", c.raftBase+i-1),
		}
		n.args = []string{"-node", n.name, "-dir", filepath.Join(c.dir, n.name), "-http", n.http, "-raft", n.raft}
		if i == 1 {
			n.args = append(n.args, "-bootstrap") // a no-op once it has state
		} else {
			n.args = append(n.args, "-join", l.nodes[0].http)
		}
		n.args = append(n.args, "-allow-origin", allow)
		n.args = append(n.args, c.nodeFlags...)
		l.nodes = append(l.nodes, n)
	}
	return l
}

func (l *lab) node(name string) *node {
	for _, n := range l.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (l *lab) pidFile(n *node) string { return filepath.Join(l.dir, n.name+".pid") }

// nodeView is one node as GET /lab-api/nodes reports it.
type nodeView struct {
	Name  string `json:"name"`
	ID    string `json:"id"` // its Raft server ID: the page's name for it
	HTTP  string `json:"http"`
	Raft  string `json:"raft"`
	PID   int    `json:"pid"` // 0 when stopped
	State string `json:"state"`
	Ours  bool   `json:"ours"` // this supervisor may act on it: it started it, or nothing runs
	Exit  string `json:"exit"` // how it ended ("killed", "exit status 1"), while stopped; "" if not known
}

// view is n's state now. A live process named by n's PID file that this
// supervisor did not start (make cluster's nodes before stlab, or those of a
// stlab that has exited) is reported but not ours.
func (l *lab) view(n *node) nodeView {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := nodeView{Name: n.name, ID: n.raft, HTTP: n.http, Raft: n.raft, State: stateStopped, Ours: true}
	if n.cmd != nil {
		v.PID = n.cmd.Process.Pid
		v.State = stateRunning
		if n.frozen || stoppedBySignal(v.PID) {
			v.State = stateFrozen
		}
		return v
	}
	if p := readPID(l.pidFile(n)); alive(p) {
		v.PID, v.Ours, v.State = p, false, stateRunning
		if stoppedBySignal(p) {
			v.State = stateFrozen
		}
		return v
	}
	v.Exit = n.exit
	return v
}

func (l *lab) views() []nodeView {
	out := make([]nodeView, 0, len(l.nodes))
	for _, n := range l.nodes {
		out = append(out, l.view(n))
	}
	return out
}

// stoppedBySignal reports whether the process is stopped (SIGSTOP from
// anyone: the supervisor, or a terminal's kill -STOP), as Linux's /proc
// says; false where there is no /proc.
func stoppedBySignal(pid int) bool {
	return statStopped(fmt.Sprintf("/proc/%d/stat", pid))
}

// statStopped reads a /proc stat file, "pid (comm) S ...", whose comm may
// hold spaces and parentheses: state T is stopped by a signal.
func statStopped(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && strings.HasPrefix(string(b[i+1:]), " T")
}

// errConflict marks a refusal because of the node's state (409).
var errConflict = errors.New("conflict")

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errConflict, fmt.Sprintf(format, a...))
}

// startMissing starts every node that is not running: at startup and on
// SIGHUP (make cluster run again).
func (l *lab) startMissing(why string) {
	l.act.Lock()
	defer l.act.Unlock()
	for _, n := range l.nodes {
		if v := l.view(n); v.State != stateStopped {
			if !v.Ours {
				l.log.Info("running already, not started by this lab: left alone", "node", n.name, "pid", v.PID)
			}
			continue
		}
		if err := l.start(n, why); err != nil {
			l.log.Error("cannot start node", "node", n.name, "error", err)
		}
	}
}

// start runs n's process with its flags and data directory, as make cluster
// does. The caller holds l.act and has seen n stopped.
func (l *lab) start(n *node, why string) error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	logPath := filepath.Join(l.dir, n.name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	defer logf.Close() // the child has its own copy
	// make cluster's wait loop reads the log from the last such line.
	if _, err := fmt.Fprintf(logf, "=== make cluster: starting %s%s\n", n.name, why); err != nil {
		return fmt.Errorf("start %s: write %s: %w", n.name, logPath, err)
	}
	cmd := exec.Command(l.bin, n.args...)
	// A file, not a pipe: the node writes its log whether or not the
	// supervisor is still there.
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session, so the nodes outlive the supervisor as they are: no
	// Ctrl-C or terminal hangup meant for it (or make) reaches them, and a
	// frozen node survives its exit (a process group of its own in the
	// supervisor's session would be orphaned then, and the kernel sends an
	// orphaned group with a stopped process SIGHUP, which ends stcached).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(l.pidFile(n), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		// Without its PID file, make stop would not find it.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	l.mu.Lock()
	n.cmd, n.done, n.frozen, n.exit = cmd, done, false, ""
	l.mu.Unlock()
	l.log.Info("started node"+why, "node", n.name, "pid", pid, "args", strings.Join(n.args, " "))
	go l.reap(n, cmd, done)
	return nil
}

// reap waits for the process to end, whoever ended it (the page, make stop,
// a terminal's kill -9, a crash of its own), and records how.
func (l *lab) reap(n *node, cmd *exec.Cmd, done chan struct{}) {
	_ = cmd.Wait() // its error is the exit, told by ProcessState
	how := exitString(cmd.ProcessState)
	l.mu.Lock()
	if n.cmd == cmd {
		n.cmd, n.frozen, n.exit = nil, false, how
	}
	l.mu.Unlock()
	close(done)
	l.log.Info("node exited", "node", n.name, "pid", cmd.Process.Pid, "exit", how)
}

// exitString says how a process ended: the signal's name ("killed",
// "terminated") or "exit status N".
func exitString(ps *os.ProcessState) string {
	if ps == nil {
		return ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

// ours returns n's process if this supervisor started it and it runs, or a
// conflict saying why not.
func (l *lab) ours(n *node) (*exec.Cmd, chan struct{}, error) {
	l.mu.Lock()
	cmd, done := n.cmd, n.done
	l.mu.Unlock()
	if cmd != nil {
		return cmd, done, nil
	}
	if v := l.view(n); !v.Ours {
		return nil, nil, conflict("%s (pid %d) was not started by this lab: it only acts on processes it started", n.name, v.PID)
	}
	return nil, nil, conflict("%s is not running", n.name)
}

// crash kills n at once (SIGKILL: no hand-over, no clean shutdown) and
// returns once the process is gone.
func (l *lab) crash(n *node) error {
	l.act.Lock()
	defer l.act.Unlock()
	cmd, done, err := l.ours(n)
	if err != nil {
		return err
	}
	// os.Process signals this very process (a pidfd on Linux): never another
	// that reused its PID.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("crash %s: %w", n.name, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("crash %s: pid %d still there 10 s after SIGKILL", n.name, cmd.Process.Pid)
	}
	l.log.Info("crashed node (SIGKILL)", "node", n.name, "pid", cmd.Process.Pid)
	return nil
}

// restart starts a stopped n again with its flags and data directory.
func (l *lab) restart(n *node) error {
	l.act.Lock()
	defer l.act.Unlock()
	if v := l.view(n); v.State != stateStopped {
		if !v.Ours {
			return conflict("%s (pid %d) runs, and was not started by this lab", n.name, v.PID)
		}
		return conflict("%s is %s: crash it first", n.name, v.State)
	}
	return l.start(n, " (restart from the lab)")
}

// freeze stops n's process (SIGSTOP): it is alive, its sockets stay open,
// and it answers nothing until thawed.
func (l *lab) freeze(n *node) error {
	l.act.Lock()
	defer l.act.Unlock()
	return l.signalFrozen(n, true)
}

// thaw lets a frozen n run again (SIGCONT).
func (l *lab) thaw(n *node) error {
	l.act.Lock()
	defer l.act.Unlock()
	return l.signalFrozen(n, false)
}

// signalFrozen freezes or thaws n. The caller holds l.act.
func (l *lab) signalFrozen(n *node, freeze bool) error {
	cmd, _, err := l.ours(n)
	if err != nil {
		return err
	}
	state := l.view(n).State
	sig, verb := syscall.SIGCONT, "thawed node (SIGCONT)"
	if freeze {
		if state != stateRunning {
			return conflict("%s is %s", n.name, state)
		}
		sig, verb = syscall.SIGSTOP, "froze node (SIGSTOP)"
	} else if state != stateFrozen {
		return conflict("%s is %s, not frozen", n.name, state)
	}
	l.mu.Lock()
	if n.cmd != cmd {
		l.mu.Unlock()
		return conflict("%s is not running", n.name) // it died meanwhile
	}
	if err := cmd.Process.Signal(sig); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("%s: %w", verb, err)
	}
	n.frozen = freeze
	l.mu.Unlock()
	l.log.Info(verb, "node", n.name, "pid", cmd.Process.Pid)
	if freeze {
		waitStopped(cmd.Process.Pid, 2*time.Second)
	}
	return nil
}

// waitStopped waits until every thread of the process has stopped, so that
// "frozen" means it answers nothing from now on: SIGSTOP returns at once,
// and a thread busy on another CPU can still serve a request meanwhile.
// Where there is no /proc it returns at once.
func waitStopped(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return // no /proc, or the process is gone
		}
		all := true
		for _, t := range tasks {
			if !statStopped(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name())) {
				all = false
				break
			}
		}
		if all {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// healAll undoes every fault: thaws the frozen nodes, heals every link
// (POST /lab/heal on each running node; a node without -lab answers 404 and
// has no link faults), and restarts the stopped nodes. It says what it did,
// one line per node; err is set if a step failed (the others still ran).
func (l *lab) healAll(ctx context.Context) (string, error) {
	l.act.Lock()
	defer l.act.Unlock()
	var out []string
	var errs []error
	for _, n := range l.nodes {
		if v := l.view(n); v.State == stateFrozen && v.Ours {
			if err := l.signalFrozen(n, false); err != nil {
				errs = append(errs, err)
				out = append(out, fmt.Sprintf("%s: thaw failed: %v", n.name, err))
				continue
			}
			out = append(out, "thawed "+n.name)
		}
	}
	for _, n := range l.nodes {
		switch v := l.view(n); v.State {
		case stateFrozen:
			out = append(out, fmt.Sprintf("%s: frozen, not by this lab (pid %d): left alone", n.name, v.PID))
		case stateRunning:
			msg, err := l.healLinks(ctx, n)
			if err != nil {
				errs = append(errs, err)
			}
			out = append(out, msg)
		}
	}
	for _, n := range l.nodes {
		if l.view(n).State != stateStopped {
			continue
		}
		if err := l.start(n, " (heal all from the lab)"); err != nil {
			errs = append(errs, err)
			out = append(out, fmt.Sprintf("%s: restart failed: %v", n.name, err))
			continue
		}
		out = append(out, "restarted "+n.name)
	}
	text := strings.Join(out, "\n") + "\n"
	l.log.Info("healed all", "did", strings.Join(out, "; "))
	return text, errors.Join(errs...)
}

// healLinks asks n to drop every cut and delay on its links.
func (l *lab) healLinks(ctx context.Context, n *node) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.http+"/lab/heal", nil)
	if err != nil {
		return "", fmt.Errorf("heal %s: %w", n.name, err)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return fmt.Sprintf("%s: heal failed: %v", n.name, err), fmt.Errorf("heal %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch resp.StatusCode {
	case http.StatusOK:
		return "healed every link of " + n.name, nil
	case http.StatusNotFound:
		return fmt.Sprintf("%s: no /lab/heal (started without -lab): no link faults to heal", n.name), nil
	}
	err = fmt.Errorf("heal %s: POST /lab/heal answered %d %s", n.name, resp.StatusCode, strings.TrimSpace(string(body)))
	return fmt.Sprintf("%s: heal failed: %d %s", n.name, resp.StatusCode, strings.TrimSpace(string(body))), err
}
