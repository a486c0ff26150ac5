package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// freeRange returns the first of n consecutive loopback ports that are free
// now, below the kernel's usual ephemeral range (so no outgoing connection
// takes one meanwhile): stlab gives node i the port base+i-1.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(12000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// testLab is a stlab process and what the test needs to talk to it.
type testLab struct {
	t        *testing.T
	bin      string
	args     []string
	dir, url string
	cmd      *exec.Cmd
	exited   chan error
	logPath  string
	client   *http.Client
}

// startLab builds stcached and stlab and starts stlab with three nodes on
// fresh ports and a temp dir; everything it started is killed at the end.
func startLab(t *testing.T) *testLab {
	tmp := t.TempDir()
	stcached, stlab := filepath.Join(tmp, "stcached"), filepath.Join(tmp, "stlab")
	for _, b := range []struct{ out, pkg string }{{stcached, "../.."}, {stlab, "."}} {
		if out, err := exec.Command("go", "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	lab := &testLab{t: t, bin: stlab, dir: filepath.Join(tmp, "cluster"), logPath: filepath.Join(tmp, "stlab.log"),
		client: &http.Client{Timeout: 10 * time.Second}}
	addr := fmt.Sprintf("127.0.0.1:%d", freeRange(t, 1))
	lab.url = "http://" + addr
	// As make cluster's nodes, but with the snapshot settings of the tutorial.
	lab.args = []string{"-bin", stcached, "-dir", lab.dir, "-n", "3", "-addr", addr,
		"-http-base", strconv.Itoa(freeRange(t, 3)), "-raft-base", strconv.Itoa(freeRange(t, 3)), "-node-flags", "-lab"}
	t.Cleanup(func() {
		if lab.cmd != nil && lab.cmd.ProcessState == nil {
			_ = lab.cmd.Process.Kill()
			<-lab.exited
		}
		for i := 1; i <= 3; i++ {
			if p := readPID(filepath.Join(lab.dir, fmt.Sprintf("node%d.pid", i))); p > 0 {
				_ = syscall.Kill(p, syscall.SIGKILL) // works on a frozen one too
			}
		}
		if t.Failed() {
			log, _ := os.ReadFile(lab.logPath)
			t.Logf("---- stlab's log ----\n%s", log)
			for i := 1; i <= 3; i++ {
				log, _ := os.ReadFile(filepath.Join(lab.dir, fmt.Sprintf("node%d.log", i)))
				t.Logf("---- node%d.log ----\n%s", i, log)
			}
		}
	})
	lab.start()
	return lab
}

// start runs stlab (again), logging to the same file.
func (l *testLab) start() {
	l.t.Helper()
	logf, err := os.OpenFile(l.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	defer logf.Close()
	l.cmd = exec.Command(l.bin, l.args...)
	l.cmd.Stdout, l.cmd.Stderr = logf, logf
	if err := l.cmd.Start(); err != nil {
		l.t.Fatalf("start stlab: %v", err)
	}
	l.exited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(l.cmd, l.exited)
	l.waitFor(10*time.Second, "stlab to answer", func() error {
		_, err := l.nodes()
		return err
	})
}

// waitFor polls cond every 50 ms until it succeeds or timeout passes.
func (l *testLab) waitFor(timeout time.Duration, what string, cond func() error) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type reply struct {
	code int
	body string
	hdr  http.Header
}

// do sends a request to stlab; hdr may set Host.
func (l *testLab) do(method, path string, hdr map[string]string) reply {
	l.t.Helper()
	req, err := http.NewRequest(method, l.url+path, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := l.client.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return reply{resp.StatusCode, string(b), resp.Header}
}

// act posts an action and wants 200 ok.
func (l *testLab) act(node, action string) {
	l.t.Helper()
	if r := l.do("POST", "/lab-api/nodes/"+node+"/"+action, nil); r.code != 200 || r.body != "ok\n" {
		l.t.Fatalf("%s %s: %d %q, want 200 ok", action, node, r.code, r.body)
	}
}

func (l *testLab) nodes() (map[string]nodeView, error) {
	resp, err := l.client.Get(l.url + "/lab-api/nodes")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list []nodeView
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("decode /lab-api/nodes: %w", err)
	}
	m := map[string]nodeView{}
	for _, v := range list {
		m[v.Name] = v
	}
	return m, nil
}

func (l *testLab) view(name string) nodeView {
	l.t.Helper()
	m, err := l.nodes()
	if err != nil {
		l.t.Fatal(err)
	}
	v, ok := m[name]
	if !ok {
		l.t.Fatalf("no %s in /lab-api/nodes: %v", name, m)
	}
	return v
}

// waitState waits until stlab reports name in state (and, when stopped,
// with exit).
func (l *testLab) waitState(name, state, exit string) nodeView {
	l.t.Helper()
	var v nodeView
	l.waitFor(10*time.Second, name+" "+state, func() error {
		v = l.view(name)
		if v.State != state || (exit != "" && v.Exit != exit) {
			return fmt.Errorf("%+v", v)
		}
		return nil
	})
	return v
}

type nodeStatus struct {
	Node     string `json:"node"`
	State    string `json:"state"`
	Leader   string `json:"leader"`
	Writable bool   `json:"writable"`
	Servers  []struct {
		ID string `json:"id"`
	} `json:"servers"`
	Lab *struct {
		Cut []string `json:"cut"`
	} `json:"lab"`
}

// status asks a node directly, within timeout.
func status(httpAddr string, timeout time.Duration) (nodeStatus, error) {
	var s nodeStatus
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + httpAddr + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("/status: %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitMember waits until the node answers /status and follows or is a
// leader of a three-voter cluster.
func (l *testLab) waitMember(name string) {
	l.t.Helper()
	v := l.view(name)
	l.waitFor(20*time.Second, name+" back in the cluster", func() error {
		s, err := status(v.HTTP, time.Second)
		if err != nil {
			return err
		}
		if s.Leader == "" || len(s.Servers) != 3 {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
}

// The supervisor on real processes: it starts three nodes; crash, restart,
// freeze and thaw act on them; a kill -9 from a terminal is seen and SIGHUP
// (make cluster again) restarts the node; heal all undoes everything; the
// page and its streams come through it; browsers' cross-site requests and
// foreign Host names are refused; and processes it did not start are left
// alone.
func TestSupervisor(t *testing.T) {
	lab := startLab(t)
	nodes, err := lab.nodes()
	if err != nil {
		t.Fatal(err)
	}
	lab.waitFor(20*time.Second, "a leader of three voters", func() error {
		for _, v := range nodes {
			if s, err := status(v.HTTP, time.Second); err == nil && s.State == "Leader" && s.Writable && len(s.Servers) == 3 {
				return nil
			}
		}
		return errors.New("none yet")
	})

	t.Run("lists its nodes", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			name := fmt.Sprintf("node%d", i)
			v := nodes[name]
			if v.State != stateRunning || !v.Ours || v.Exit != "" || v.ID != v.Raft || v.ID == "" {
				t.Errorf("%s: %+v, want running, ours, id = raft address", name, v)
			}
			if p := readPID(filepath.Join(lab.dir, name+".pid")); p != v.PID {
				t.Errorf("%s: pid %d, pid file says %d", name, v.PID, p)
			}
		}
		if p := readPID(filepath.Join(lab.dir, "stlab.pid")); p != lab.cmd.Process.Pid {
			t.Errorf("stlab.pid says %d, stlab is %d", p, lab.cmd.Process.Pid)
		}
	})

	t.Run("serves the page and the nodes through itself", func(t *testing.T) {
		if r := lab.do("GET", "/", nil); r.code != 200 || !strings.Contains(r.body, "live Raft view") {
			t.Errorf("GET / (redirected to /ui): %d, want 200 and the page; body starts %.200q", r.code, r.body)
		}
		r := lab.do("GET", "/status", nil)
		var s nodeStatus
		if err := json.Unmarshal([]byte(r.body), &s); r.code != 200 || err != nil || s.Node != "node1" {
			t.Errorf("GET /status: %d %q (%v), want node1's status", r.code, r.body, err)
		}
		// The stream's first event must come through at once, not when a
		// buffer fills.
		resp, err := lab.client.Get(lab.url + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "event: ") {
					got <- sc.Text()
					return
				}
			}
			got <- "stream ended: " + fmt.Sprint(sc.Err())
		}()
		select {
		case ev := <-got:
			if ev != "event: status" || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("/events: first %q, Content-Type %q", ev, resp.Header.Get("Content-Type"))
			}
		case <-time.After(3 * time.Second):
			t.Error("/events through stlab: no event within 3 s")
		}
	})

	t.Run("refuses cross-site requests and foreign hosts", func(t *testing.T) {
		for _, hdr := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site"},
			{"Origin": "http://evil.example"},
			{"Origin": "null"},
		} {
			for _, path := range []string{"/lab-api/nodes/node2/crash", "/lab-api/heal-all"} {
				if r := lab.do("POST", path, hdr); r.code != 403 || r.body != "forbidden: cross-site request\n" {
					t.Errorf("POST %s with %v: %d %q, want 403 forbidden: cross-site request", path, hdr, r.code, r.body)
				}
			}
		}
		if v := lab.view("node2"); v.State != stateRunning || v.PID != nodes["node2"].PID {
			t.Errorf("after refused crashes node2 is %+v, want still running as pid %d", v, nodes["node2"].PID)
		}
		for _, path := range []string{"/lab-api/nodes", "/", "/status"} {
			if r := lab.do("GET", path, map[string]string{"Host": "rebind.evil.example" + lab.url[len("http://127.0.0.1"):]}); r.code != 403 || r.body != "forbidden: unknown host\n" {
				t.Errorf("GET %s with a foreign Host: %d %q, want 403 forbidden: unknown host", path, r.code, r.body)
			}
		}
		// A node's own page may call the API and read the answer; a stranger's may not read it.
		member := "http://" + nodes["node2"].HTTP
		if r := lab.do("GET", "/lab-api/nodes", map[string]string{"Origin": member}); r.hdr.Get("Access-Control-Allow-Origin") != member || r.hdr.Get("Vary") != "Origin" {
			t.Errorf("CORS for a member's page: %v", r.hdr)
		}
		if r := lab.do("GET", "/lab-api/nodes", map[string]string{"Origin": "http://evil.example"}); r.hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("CORS for a stranger: %v", r.hdr)
		}
		for _, c := range []struct {
			method, path string
			code         int
		}{
			{"GET", "/lab-api/nodes/node2/crash", 405},
			{"GET", "/lab-api/heal-all", 405},
			{"POST", "/lab-api/nodes/node9/crash", 404},
			{"POST", "/lab-api/nodes/node2/explode", 404},
			{"POST", "/lab-api/nodes", 405},
			{"GET", "/lab-api/other", 404},
		} {
			if r := lab.do(c.method, c.path, nil); r.code != c.code {
				t.Errorf("%s %s: %d %q, want %d", c.method, c.path, r.code, r.body, c.code)
			}
		}
	})

	t.Run("crash and restart", func(t *testing.T) {
		lab.act("node2", "crash")
		v := lab.view("node2") // crash answers once the process is gone
		if v.State != stateStopped || v.Exit != "killed" || !v.Ours || v.PID != 0 {
			t.Fatalf("after crash: %+v, want stopped, killed", v)
		}
		if _, err := status(nodes["node2"].HTTP, time.Second); err == nil {
			t.Fatal("crashed node2 still answers /status")
		}
		if r := lab.do("POST", "/lab-api/nodes/node2/crash", nil); r.code != 409 {
			t.Errorf("crash of a stopped node: %d %q, want 409", r.code, r.body)
		}
		lab.act("node2", "restart")
		if r := lab.do("POST", "/lab-api/nodes/node2/restart", nil); r.code != 409 {
			t.Errorf("restart of a running node: %d %q, want 409", r.code, r.body)
		}
		lab.waitMember("node2")
		if v := lab.view("node2"); v.State != stateRunning || v.PID == nodes["node2"].PID || v.Exit != "" {
			t.Errorf("after restart: %+v", v)
		}
	})

	t.Run("freeze and thaw", func(t *testing.T) {
		// As the page sends it: same origin.
		page := map[string]string{"Origin": lab.url, "Sec-Fetch-Site": "same-origin"}
		if r := lab.do("POST", "/lab-api/nodes/node1/freeze", page); r.code != 200 || r.body != "ok\n" {
			t.Fatalf("freeze from the page: %d %q", r.code, r.body)
		}
		lab.waitState("node1", stateFrozen, "")
		if _, err := status(nodes["node1"].HTTP, 500*time.Millisecond); err == nil {
			t.Error("frozen node1 answers /status")
		}
		// The relay skips a frozen node: node2 serves.
		r := lab.do("GET", "/status", nil)
		var s nodeStatus
		if err := json.Unmarshal([]byte(r.body), &s); err != nil || s.Node != "node2" {
			t.Errorf("GET /status through stlab with node1 frozen: %d %q, want node2's", r.code, r.body)
		}
		if r := lab.do("POST", "/lab-api/nodes/node1/freeze", nil); r.code != 409 {
			t.Errorf("freeze of a frozen node: %d %q, want 409", r.code, r.body)
		}
		lab.act("node1", "thaw")
		if r := lab.do("POST", "/lab-api/nodes/node1/thaw", nil); r.code != 409 {
			t.Errorf("thaw of a running node: %d %q, want 409", r.code, r.body)
		}
		lab.waitState("node1", stateRunning, "")
		lab.waitMember("node1")
	})

	t.Run("a kill -9 from a terminal, then make cluster again (SIGHUP)", func(t *testing.T) {
		pid := readPID(filepath.Join(lab.dir, "node3.pid"))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		lab.waitState("node3", stateStopped, "killed")
		if err := lab.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		v := lab.waitState("node3", stateRunning, "")
		if v.PID == pid || readPID(filepath.Join(lab.dir, "node3.pid")) != v.PID {
			t.Errorf("after SIGHUP: %+v, old pid %d", v, pid)
		}
		lab.waitMember("node3")
		log, _ := os.ReadFile(filepath.Join(lab.dir, "node3.log"))
		if n := strings.Count(string(log), "=== make cluster: starting node3"); n != 2 {
			t.Errorf("node3.log has %d start lines, want 2", n)
		}
	})

	t.Run("heal all", func(t *testing.T) {
		lab.act("node2", "crash")
		lab.act("node3", "freeze")
		cut, err := lab.client.Post("http://"+nodes["node1"].HTTP+"/lab/cut?peer="+nodes["node2"].Raft, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		cut.Body.Close()
		if s, err := status(nodes["node1"].HTTP, time.Second); err != nil || s.Lab == nil || len(s.Lab.Cut) != 1 || cut.StatusCode != 200 {
			t.Fatalf("cut node1 -> node2: %d, then %+v %v", cut.StatusCode, s.Lab, err)
		}
		r := lab.do("POST", "/lab-api/heal-all", nil)
		for _, want := range []string{"thawed node3\n", "healed every link of node1\n", "healed every link of node3\n", "restarted node2\n"} {
			if r.code != 200 || !strings.Contains(r.body, want) {
				t.Fatalf("heal-all: %d %q, want 200 and %q", r.code, r.body, want)
			}
		}
		if s, err := status(nodes["node1"].HTTP, time.Second); err != nil || s.Lab == nil || len(s.Lab.Cut) != 0 {
			t.Errorf("node1's links after heal-all: %+v %v, want no cut", s.Lab, err)
		}
		for _, n := range []string{"node1", "node2", "node3"} {
			lab.waitMember(n)
		}
	})

	t.Run("leaves alone the processes it did not start", func(t *testing.T) {
		// A frozen node, too, outlives the supervisor, and stays frozen.
		lab.act("node2", "freeze")
		before, err := lab.nodes()
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-lab.exited:
			if err != nil {
				t.Fatalf("stlab after SIGTERM: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stlab still runs 10 s after SIGTERM")
		}
		if _, err := os.Stat(filepath.Join(lab.dir, "stlab.pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stlab.pid after exit: %v", err)
		}
		for name, v := range before {
			if !alive(v.PID) {
				t.Errorf("%s (pid %d) died with stlab", name, v.PID)
			}
		}
		lab.start() // finds them running
		for name, v := range lab.mustNodes() {
			want := stateRunning
			if name == "node2" {
				want = stateFrozen
			}
			if v.Ours || v.State != want || v.PID != before[name].PID {
				t.Errorf("%s: %+v, want %s, not ours, pid %d", name, v, want, before[name].PID)
			}
		}
		for _, action := range []string{"node1/crash", "node1/freeze", "node1/restart", "node2/thaw"} {
			if r := lab.do("POST", "/lab-api/nodes/"+action, nil); r.code != 409 {
				t.Errorf("%s of a node it did not start: %d %q, want 409", action, r.code, r.body)
			}
		}
		if r := lab.do("POST", "/lab-api/heal-all", nil); r.code != 200 || !strings.Contains(r.body, "node2: frozen, not by this lab") || strings.Contains(r.body, "thawed") {
			t.Errorf("heal-all with a frozen node it did not start: %d %q", r.code, r.body)
		}
		if !stoppedBySignal(before["node2"].PID) {
			t.Error("node2 was thawed by a lab that did not start it")
		}
		if s, err := status(before["node1"].HTTP, time.Second); err != nil {
			t.Errorf("node1 after refused actions: %v", err)
		} else if s.State == "" {
			t.Errorf("node1 status: %+v", s)
		}
	})
}

func (l *testLab) mustNodes() map[string]nodeView {
	l.t.Helper()
	m, err := l.nodes()
	if err != nil {
		l.t.Fatal(err)
	}
	return m
}

// The relay tries the nodes in order and goes on past one that does not
// answer (here a port nothing listens on, as a node that has just been
// started is before it listens).
func TestRelayFailover(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s", r.Method, r.URL.Path, r.Host)
	}))
	defer srv.Close()
	dead := fmt.Sprintf("127.0.0.1:%d", freeRange(t, 1))
	dir := t.TempDir()
	l := &lab{dir: dir, addr: "127.0.0.1:6080", log: hclog.NewNullLogger(), client: http.DefaultClient}
	for i, h := range []string{dead, strings.TrimPrefix(srv.URL, "http://")} {
		n := &node{name: fmt.Sprintf("node%d", i+1), http: h, raft: h}
		l.nodes = append(l.nodes, n)
		// A live process it did not start: running, so a candidate.
		if err := os.WriteFile(l.pidFile(n), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHandler(l)
	for _, method := range []string{"GET", "POST"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "http://127.0.0.1:6080/status", nil))
		want := method + " /status host=" + l.nodes[1].http
		if rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("%s: %d %q, want 200 %q", method, rec.Code, rec.Body.String(), want)
		}
	}
}

// Heal all asks each node to heal its links: a node started without -lab
// answers 404, which is no failure (it has no link faults); any other
// refusal is one.
func TestHealLinks(t *testing.T) {
	for _, c := range []struct {
		code    int
		want    string
		failure bool
	}{
		{200, "healed every link of node1", false},
		{404, "node1: no /lab/heal (started without -lab): no link faults to heal", false},
		{403, "node1: heal failed: 403 forbidden: cross-site request", true},
	} {
		var got string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.Method + " " + r.URL.String()
			text(w, c.code, map[int]string{200: "ok\n", 404: "404 page not found\n", 403: "forbidden: cross-site request\n"}[c.code])
		}))
		l := &lab{log: hclog.NewNullLogger(), client: srv.Client()}
		msg, err := l.healLinks(t.Context(), &node{name: "node1", http: strings.TrimPrefix(srv.URL, "http://")})
		srv.Close()
		if got != "POST /lab/heal" || msg != c.want || (err != nil) != c.failure {
			t.Errorf("%d: sent %q; said %q, err %v; want %q, failure %v", c.code, got, msg, err, c.want, c.failure)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6080", true},
		{"localhost:6080", true},
		{"[::1]:6080", true},
		{"0.0.0.0:6080", false},
		{":6080", false},
		{"192.0.2.1:6080", false},
		{"127.0.0.1:6000", false}, // browsers refuse it
		{"127.0.0.1:6666", false},
		{"127.0.0.1", false},
	} {
		_, err := parseFlags([]string{"-addr", c.addr}, io.Discard)
		if (err == nil) != c.ok {
			t.Errorf("-addr %s: %v, want ok=%v", c.addr, err, c.ok)
		}
	}
	if got := strings.Join(pageOrigins("127.0.0.1:6080"), " "); got != "http://127.0.0.1:6080 http://localhost:6080" {
		t.Errorf("page origins: %s", got)
	}
}
