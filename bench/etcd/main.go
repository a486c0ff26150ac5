// Command etcdbench measures a fresh local etcd cluster with etcd's own Go
// client, the way stbench measures stcache, so that the two tables compare.
//
// It starts three etcd members (go.etcd.io/etcd/server/v3's embed package,
// each in a process of its own: this binary run again with -member) on
// random loopback ports with temporary data directories and etcd's default
// settings, waits for a leader, preloads the keyspace, then runs each
// workload for a fixed duration and prints one table: ops/s, latency
// percentiles, errors, and the CPU time per answered request of the leader,
// of the three members together and of etcdbench itself, read from /proc as
// stbench does. Every member it started is stopped and its data removed when
// it finishes, fails or is interrupted.
//
// Workloads, named as stbench's, <kind><clients>:
//
//	set     Put(K, V)                       to the leader
//	get     Get(K, WithSerializable())      to the leader: its own store, as stcache's stale get
//	strong  Get(K), linearizable (ReadIndex) to the leader
//
// One clientv3.Client aimed at the leader only (its client URL), shared by
// the workload's goroutines (gRPC multiplexes them over one connection, as
// etcd's own benchmark tool does by default), so no request is forwarded
// between members, as with stbench, whose requests all go to the leader.
//
// It lives in a module of its own (bench/etcd) so that stcache's go.mod does
// not grow etcd and gRPC. Run it with `make bench-etcd` from the repository
// root, or:
//
//	cd bench/etcd && go run . -workloads set1,set64 -duration 4s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

type config struct {
	duration  time.Duration
	keys      int
	valueSize int
	workloads []workload
	tmp       string
	keep      bool

	// -member: run one etcd member (internal).
	member      string
	dir         string
	peerURL     string
	clientURL   string
	initCluster string
}

type workload struct {
	name    string
	kind    string // set, get, strong
	clients int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdbench:", err)
		os.Exit(2)
	}
	if cfg.member != "" {
		if err := runMember(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "etcdbench member:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "etcdbench: interrupted; every member stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdbench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("etcdbench", flag.ContinueOnError)
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each workload runs")
	fs.IntVar(&cfg.keys, "keys", 10000, "keyspace size; every key is preloaded before the first workload")
	fs.IntVar(&cfg.valueSize, "value-size", 100, "value size in bytes")
	wl := fs.String("workloads", "set1,set64,get64,strong64", "comma-separated workloads: set<N> (Put), get<N> (serializable Get), strong<N> (linearizable Get), N clients each")
	fs.StringVar(&cfg.tmp, "tmp", "", "directory for the members' temporary data dirs (default: the system's temp dir); it decides which disk fsyncs")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (member data and logs) and print its path")
	fs.StringVar(&cfg.member, "member", "", "(internal) run one member with this name")
	fs.StringVar(&cfg.dir, "member-dir", "", "(internal) the member's data dir")
	fs.StringVar(&cfg.peerURL, "member-peer", "", "(internal) the member's peer URL")
	fs.StringVar(&cfg.clientURL, "member-client", "", "(internal) the member's client URL")
	fs.StringVar(&cfg.initCluster, "member-cluster", "", "(internal) etcd's initial-cluster")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.member != "" {
		return cfg, nil
	}
	if cfg.duration <= 0 || cfg.keys <= 0 || cfg.valueSize <= 0 {
		return nil, errors.New("-duration, -keys and -value-size must be positive")
	}
	for _, name := range strings.Split(*wl, ",") {
		name = strings.TrimSpace(name)
		kind := strings.TrimRight(name, "0123456789")
		n, err := strconv.Atoi(name[len(kind):])
		if err != nil || n <= 0 || (kind != "set" && kind != "get" && kind != "strong") {
			return nil, fmt.Errorf("workload %q: want set<N>, get<N> or strong<N>", name)
		}
		cfg.workloads = append(cfg.workloads, workload{name: name, kind: kind, clients: n})
	}
	return cfg, nil
}

// runMember is one etcd member, in this process, until SIGTERM.
func runMember(cfg *config) error {
	peer, err := url.Parse(cfg.peerURL)
	if err != nil {
		return fmt.Errorf("-member-peer: %w", err)
	}
	client, err := url.Parse(cfg.clientURL)
	if err != nil {
		return fmt.Errorf("-member-client: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name, ec.Dir = cfg.member, cfg.dir
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	ec.InitialCluster = cfg.initCluster
	ec.InitialClusterToken = "etcdbench"
	ec.ClusterState = embed.ClusterStateFlagNew
	ec.LogLevel = "warn" // etcd logs every applied request slower than 100 ms at warn
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-stop:
		return nil
	}
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-stop:
		return nil
	}
}

// member is one etcd member process.
type member struct {
	name      string
	clientURL string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       string
}

func (m *member) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

func run(ctx context.Context, cfg *config, out io.Writer) (err error) {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(cfg.tmp, "etcdbench-")
	if err != nil {
		return err
	}
	var members []*member
	defer func() {
		for _, m := range members {
			m.stop()
		}
		if cfg.keep {
			fmt.Fprintf(out, "kept member data and logs in %s\n", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	var initial []string
	for i := 1; i <= 3; i++ {
		m := &member{name: fmt.Sprintf("m%d", i)}
		peer, err := freeAddr()
		if err != nil {
			return err
		}
		client, err := freeAddr()
		if err != nil {
			return err
		}
		m.clientURL = "http://" + client
		initial = append(initial, m.name+"=http://"+peer)
		members = append(members, m)
		m.cmd = exec.Command(self, "-member", m.name, "-member-dir", filepath.Join(dir, m.name), "-member-client", m.clientURL,
			"-member-peer", "http://"+peer)
	}
	for _, m := range members {
		m.cmd.Args = append(m.cmd.Args, "-member-cluster", strings.Join(initial, ","))
		m.log = filepath.Join(dir, m.name+".log")
		f, err := os.Create(m.log)
		if err != nil {
			return err
		}
		m.cmd.Stdout, m.cmd.Stderr = f, f
		// A process group of its own: a Ctrl-C reaches only us, and we
		// stop the members in order.
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := m.cmd.Start(); err != nil {
			f.Close()
			return fmt.Errorf("start %s: %w", m.name, err)
		}
		m.exited = make(chan struct{})
		go func(m *member, f *os.File) {
			_ = m.cmd.Wait() // how it ended shows in its log
			f.Close()
			close(m.exited)
		}(m, f)
	}
	leader, err := waitLeader(ctx, members, 60*time.Second)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{leader.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer cli.Close()
	fmt.Fprintf(out, "etcdbench: 3 members (etcd server %s, embed), leader %s (%s)\n", version.Version, leader.name, leader.clientURL)
	fmt.Fprintf(out, "%d CPUs, GOMAXPROCS %d; keyspace %d keys, values %d bytes, %s per workload, clientv3 to the leader\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cfg.keys, cfg.valueSize, cfg.duration)
	t0 := time.Now()
	if err := preload(ctx, cli, cfg); err != nil {
		return err
	}
	fmt.Fprintf(out, "preloaded %d keys in %v\n\n", cfg.keys, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(out, row, "workload", "clients", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "leader", "cluster", "etcdbench")
	for _, w := range cfg.workloads {
		if err := measure(ctx, cli, cfg, w, members, leader, out); err != nil {
			return err
		}
		now, err := waitLeader(ctx, members, 60*time.Second)
		if err != nil {
			return err
		}
		if now != leader {
			return fmt.Errorf("%s: the leader changed during the run (%s, now %s): rerun", w.name, leader.name, now.name)
		}
	}
	fmt.Fprintln(out, "\nleader, cluster (3 members), etcdbench: CPU time per answered request, in microseconds")
	for _, m := range members {
		role := "follower"
		if m == leader {
			role = "leader"
		}
		fmt.Fprintf(out, "%s (%s) peak RSS %s\n", m.name, role, procMem(m.cmd.Process.Pid, "VmHWM"))
	}
	return nil
}

// Fixed widths, as stbench's table.
const row = "%-9s %7s %9s %8s %8s %8s %8s %7s %8s %8s %9s\n"

// waitLeader asks every member for its status until one says it leads and
// all three agree.
func waitLeader(ctx context.Context, members []*member, timeout time.Duration) (*member, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, m := range members {
			select {
			case <-m.exited:
				return nil, fmt.Errorf("%s exited; its log (%s) ends:\n%s", m.name, m.log, tail(m.log))
			default:
			}
		}
		l, err := leaderOf(ctx, members)
		if err == nil {
			return l, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("no leader after %v: %v", timeout, last)
}

func leaderOf(ctx context.Context, members []*member) (*member, error) {
	var eps []string
	for _, m := range members {
		eps = append(eps, m.clientURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var leader *member
	for _, m := range members {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		if st.Leader == 0 {
			return nil, fmt.Errorf("%s knows no leader", m.name)
		}
		if st.Leader == st.Header.MemberId {
			leader = m
		}
	}
	if leader == nil {
		return nil, errors.New("no member says it leads")
	}
	return leader, nil
}

func key(i int) string { return "key" + strconv.Itoa(i) }

// value returns n ASCII letters and digits, as stbench's values.
func value(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return string(b)
}

func preload(ctx context.Context, cli *clientv3.Client, cfg *config) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	v := value(cfg.valueSize)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.keys {
					return
				}
				if _, err := cli.Put(ctx, key(i), v); err != nil {
					errs <- fmt.Errorf("preload %s: %w", key(i), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when there was none
}

// result is one workload's outcome.
type result struct {
	ok, errs  int64
	firstErr  error
	latencies []time.Duration // of every answered request
	elapsed   time.Duration
}

func runWorkload(ctx context.Context, cli *clientv3.Client, cfg *config, w workload) *result {
	r := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	v := value(cfg.valueSize)
	for range w.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var ok, bad int64
			var first error
			for time.Now().Before(deadline) && ctx.Err() == nil {
				k := key(rand.IntN(cfg.keys))
				t := time.Now()
				var err error
				switch w.kind {
				case "set":
					_, err = cli.Put(ctx, k, v)
				case "get":
					_, err = cli.Get(ctx, k, clientv3.WithSerializable())
				case "strong":
					_, err = cli.Get(ctx, k)
				}
				lat = append(lat, time.Since(t))
				if err != nil {
					bad++
					if first == nil {
						first = err
					}
					continue
				}
				ok++
			}
			mu.Lock()
			r.ok += ok
			r.errs += bad
			if r.firstErr == nil {
				r.firstErr = first
			}
			r.latencies = append(r.latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	slices.Sort(r.latencies)
	return r
}

func measure(ctx context.Context, cli *clientv3.Client, cfg *config, w workload, members []*member, leader *member, out io.Writer) error {
	cpu := func() (l, c, s time.Duration) {
		for _, m := range members {
			t := procCPU(m.cmd.Process.Pid)
			c += t
			if m == leader {
				l = t
			}
		}
		return l, c, procCPU(os.Getpid())
	}
	l0, c0, s0 := cpu()
	r := runWorkload(ctx, cli, cfg, w)
	if err := ctx.Err(); err != nil {
		return err
	}
	l1, c1, s1 := cpu()
	q := func(p float64) string {
		if len(r.latencies) == 0 {
			return "-"
		}
		return ms(r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))])
	}
	done := r.ok + r.errs
	fmt.Fprintf(out, row, w.name, strconv.Itoa(w.clients),
		strconv.FormatFloat(float64(r.ok)/r.elapsed.Seconds(), 'f', 0, 64),
		q(0.50), q(0.90), q(0.99), q(1),
		strconv.FormatInt(r.errs, 10), perOp(l1-l0, done), perOp(c1-c0, done), perOp(s1-s0, done))
	if r.errs > 0 {
		fmt.Fprintf(out, "  %s: %d errors; first: %v\n", w.name, r.errs, r.firstErr)
	}
	return nil
}

// freeAddr returns a loopback address whose port is free now. From below
// the kernel's ephemeral range, as stcache's test harness does: a port the
// kernel just handed out may become the source port of an outgoing
// connection before the member binds it.
func freeAddr() (string, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	lo = max(lo, 20000)
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(lo-10000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free loopback port found")
}

// procCPU returns utime+stime of a Linux process (0 without /proc), in
// clock ticks of USER_HZ, 100 on every Linux architecture Go supports.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procMem reads a memory field (VmHWM: peak RSS) of a Linux process.
func procMem(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return strconv.FormatFloat(kb/1024, 'f', 1, 64) + " MiB"
			}
		}
	}
	return "n/a"
}

func perOp(cpu time.Duration, ops int64) string {
	if cpu <= 0 || ops <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(cpu.Microseconds())/float64(ops), 'f', 1, 64)
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

// tail is the last lines of a member's log, for an error.
func tail(path string) string {
	b, _ := os.ReadFile(path) // a missing log reads as empty
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
