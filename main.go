// Command stcached is a key-value cache whose writes are replicated with Raft
// (hashicorp/raft), so that every node holds the same data.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// options are the command line, as in the original stcache plus the contract.
type options struct {
	httpAddr          string
	httpAdvertise     string
	raftAddr          string
	raftAdvertise     string
	node              string
	dir               string
	bootstrap         bool
	join              string
	joinTimeout       time.Duration
	snapshotInterval  time.Duration
	snapshotThreshold uint64
	trailingLogs      uint64
	logStore          string
	walSegmentSize    int64
	logLevel          string
	tokenFile         string
	tls               tlsFiles
	maxMemory         int64
	pprof             bool
	allowOrigins      []string
	lab               bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("stcached", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.httpAddr, "http", "127.0.0.1:6000", "HTTP API listen address")
	fs.StringVar(&o.httpAdvertise, "http-advertise", "", "HTTP address other nodes send clients to (default: -http)")
	fs.StringVar(&o.raftAddr, "raft", "127.0.0.1:7000", "Raft TCP listen address")
	fs.StringVar(&o.raftAdvertise, "raft-advertise", "", "Raft address peers dial, and this node's server ID (default: -raft)")
	fs.StringVar(&o.node, "node", "node1", "node name; the data directory is ./<node> unless -dir is given")
	fs.StringVar(&o.dir, "dir", "", "data directory (default: ./<node>)")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "start a new one-node cluster with this node as its only voter (a no-op on existing state)")
	fs.StringVar(&o.join, "join", "", "HTTP address of any cluster member to join through")
	fs.DurationVar(&o.joinTimeout, "join-timeout", time.Minute, "how long a new node keeps trying to -join before it gives up")
	fs.DurationVar(&o.snapshotInterval, "snapshot-interval", 20*time.Second, "how often Raft checks whether to take a snapshot")
	fs.Uint64Var(&o.snapshotThreshold, "snapshot-threshold", 2, "log entries since the last snapshot that make a snapshot due")
	fs.Uint64Var(&o.trailingLogs, "trailing-logs", raft.DefaultConfig().TrailingLogs, "log entries kept behind each snapshot (Raft TrailingLogs); a follower further behind is sent the snapshot")
	fs.StringVar(&o.logStore, "log-store", storeBolt, "where Raft keeps its log, term and vote: bolt (BoltDB: raft-log.bolt and raft-stable.bolt, as in the tutorial) or wal (hashicorp/raft-wal, an append-only log in <dir>/wal/: one fsync per append instead of two, not yet as proven); a data dir opens only with the store it was made with, never converted")
	walSegment := fs.String("wal-segment-size", "64MiB", "with -log-store wal: the size of each segment file, allocated whole when it is created; a segment is deleted once a snapshot covers it, so the log takes one or two of them on disk (4KiB to 1GiB)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn or error")
	maxMemory := fs.String("max-memory", "1GiB", "most memory the map may hold: bytes of keys plus values, plus 96 per key (KiB, MiB, GiB or plain bytes; 0: no limit); the leader refuses writes past it with 507")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go's profiler (net/http/pprof) under /debug/pprof/ (behind the -token-file token when there is one)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding a shared secret (16+ bytes); /set, /delete, /get, /join, /leave (and -pprof's /debug/pprof/) then need \"Authorization: Bearer <token>\", and -join sends it")
	allowOrigin := fs.String("allow-origin", "", "comma-separated origins (http(s)://host:port) of pages that may change state here, besides the members' own pages (e.g. a lab page server)")
	fs.BoolVar(&o.lab, "lab", false, "serve POST /lab/cut, /lab/slow and /lab/heal: cut or slow this node's Raft RPCs to a peer, for learning (loopback addresses only)")
	fs.StringVar(&o.tls.cert, "tls-cert", "", "PEM certificate of this node (with -tls-key and -tls-ca): Raft over mutual TLS, the API over HTTPS")
	fs.StringVar(&o.tls.key, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&o.tls.ca, "tls-ca", "", "PEM certificate of the CA that signs every node's certificate")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `stcached: a key-value cache replicated with Raft.

Start a cluster (as in the tutorial):
  stcached -node node1 -http 127.0.0.1:6000 -raft 127.0.0.1:7000 -bootstrap
  stcached -node node2 -http 127.0.0.1:6001 -raft 127.0.0.1:7001 -join 127.0.0.1:6000
  stcached -node node3 -http 127.0.0.1:6002 -raft 127.0.0.1:7002 -join 127.0.0.1:6000

API: /set?key=K&value=V[&ttl=30s]  /get?key=K[&consistency=strong]  /delete?key=K
     /join?peerAddress=R[&httpAddress=H]  /leave?peerAddress=R  /status
     /events (Server-Sent Events)  /ui (the live view: open http://127.0.0.1:6001/;
     browsers refuse port 6000)

Off loopback: -token-file guards the API, -tls-cert/-tls-key/-tls-ca put Raft
on mutual TLS and the API on HTTPS (make certs HOSTS=... makes the files).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if o.dir == "" {
		o.dir = o.node
	}
	if o.node == "" {
		return nil, errors.New("-node must not be empty")
	}
	if o.bootstrap && o.join != "" {
		return nil, errors.New("-bootstrap and -join exclude each other: bootstrap the first node, join the others")
	}
	if o.snapshotInterval <= 0 || o.joinTimeout <= 0 {
		return nil, errors.New("-snapshot-interval and -join-timeout must be positive")
	}
	if o.snapshotThreshold == 0 {
		return nil, errors.New("-snapshot-threshold must be at least 1")
	}
	if o.logStore != storeBolt && o.logStore != storeWAL {
		return nil, fmt.Errorf("-log-store %q: want %s or %s", o.logStore, storeBolt, storeWAL)
	}
	if hclog.LevelFromString(o.logLevel) == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", o.logLevel)
	}
	var err error
	if o.maxMemory, err = parseBytes(*maxMemory); err != nil {
		return nil, fmt.Errorf("-max-memory %w", err)
	}
	if o.walSegmentSize, err = parseBytes(*walSegment); err != nil || o.walSegmentSize < minWALSegment || o.walSegmentSize > maxWALSegment {
		return nil, fmt.Errorf("-wal-segment-size %q: want 4KiB to 1GiB", *walSegment)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "wal-segment-size" && o.logStore != storeWAL && err == nil {
			err = errors.New("-wal-segment-size is for -log-store wal only")
		}
	})
	if err != nil {
		return nil, err
	}
	if o.httpAdvertise, err = advertised("-http", o.httpAddr, o.httpAdvertise); err != nil {
		return nil, err
	}
	if o.raftAdvertise, err = advertised("-raft", o.raftAddr, o.raftAdvertise); err != nil {
		return nil, err
	}
	if o.allowOrigins, err = parseAllowOrigins(*allowOrigin); err != nil {
		return nil, fmt.Errorf("-allow-origin %w", err)
	}
	if o.join != "" && !validAddr(o.join) {
		return nil, fmt.Errorf("-join %q: want host:port of a member's HTTP API", o.join)
	}
	return o, nil
}

// advertised checks a listen address and returns the address to advertise
// for it: one that other nodes can dial, so never 0.0.0.0.
func advertised(flagName, listen, adv string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", fmt.Errorf("%s %q: want host:port", flagName, listen)
	}
	if adv != "" {
		if !validAddr(adv) {
			return "", fmt.Errorf("%s-advertise %q: want host:port", flagName, adv)
		}
		if ip := net.ParseIP(mustHost(adv)); ip != nil && ip.IsUnspecified() {
			return "", fmt.Errorf("%s-advertise %q: other nodes cannot dial an unspecified address", flagName, adv)
		}
		return adv, nil
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("%s %q binds every interface: give %s-advertise with the address other nodes should dial", flagName, listen, flagName)
	}
	return listen, nil
}

func mustHost(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}

// run is main without os.Exit, so the exit code is decided in one place.
func run(args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "stcached: %v\n", err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Level:  hclog.LevelFromString(o.logLevel),
		Output: stderr,
	}).With("node", o.node)
	if err := serve(o, log); err != nil {
		fmt.Fprintf(stderr, "stcached: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the node until SIGINT or SIGTERM, then shuts it down in order:
// stop taking requests, hand over leadership, stop Raft, close the stores.
func serve(o *options, log hclog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tuneGC() // memory.go: the collector's headroom, for the process

	// The contract makes these exit 1 (a file problem), not 2 (a bad flag).
	var token string
	if o.tokenFile != "" {
		var err error
		if token, err = readToken(o.tokenFile); err != nil {
			return err
		}
	}
	var tlsConf *tlsSetup
	switch n := countSet(o.tls.cert, o.tls.key, o.tls.ca); n {
	case 0:
	case 3:
		var err error
		if tlsConf, err = loadTLS(o.tls); err != nil {
			return err
		}
	default:
		return errTLSFlags
	}
	if o.lab {
		for _, a := range []struct{ flag, addr string }{
			{"-http", o.httpAddr}, {"-http-advertise", o.httpAdvertise}, {"-raft", o.raftAddr}, {"-raft-advertise", o.raftAdvertise},
		} {
			if !isLoopbackBind(a.addr) {
				return fmt.Errorf("-lab runs only on loopback: %s %s is not a loopback address", a.flag, a.addr)
			}
		}
	}
	if token == "" && (!isLoopbackBind(o.httpAddr) || !isLoopbackBind(o.raftAddr)) {
		log.Warn("listening beyond loopback without -token-file: anyone who reaches the HTTP API can read, write and add voters (see Running on several hosts)",
			"http", o.httpAddr, "raft", o.raftAddr)
	}

	// Listen before opening the node, so a busy port fails fast; serve only
	// once the node exists.
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("listen for http on %s: %w", o.httpAddr, err)
	}
	// Before the node: raft and its stores report through go-metrics from
	// their first moment.
	met, err := newMetrics()
	if err != nil {
		ln.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	joins := newJoiner(tlsConf, token)
	n, err := openNode(nodeConfig{
		Name:              o.node,
		Dir:               o.dir,
		HTTPAdvertise:     o.httpAdvertise,
		RaftBind:          o.raftAddr,
		RaftAdvertise:     o.raftAdvertise,
		Bootstrap:         o.bootstrap,
		JoinVia:           o.join,
		TLS:               tlsConf,
		Peers:             joins,
		MaxMemory:         o.maxMemory,
		OnBatch:           met.observeBatch,
		SnapshotInterval:  o.snapshotInterval,
		SnapshotThreshold: o.snapshotThreshold,
		TrailingLogs:      o.trailingLogs,
		LogStore:          o.logStore,
		WALSegmentSize:    int(o.walSegmentSize),
		Lab:               o.lab,
		Logger:            log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	met.watchCache(n.cache.Bytes, n.cache.Len)
	hlog := log.Named("http")
	srv := &http.Server{
		Handler: limitBody(met.instrument(newHandler(n, n.Events(), hlog, security{
			https: tlsConf != nil, token: token,
			origin: newOriginPolicy([]string{o.httpAddr, o.httpAdvertise, o.raftAddr, o.raftAdvertise}, o.allowOrigins, n.Members),
			peers:  joins,
		}, extraRoutes(met, o.pprof, token))), bodyTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          hlog.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// Event streams never end by themselves: end them when the server
	// shuts down, or its drain would wait for every open browser tab.
	srv.RegisterOnShutdown(n.Events().close)
	served := make(chan error, 1)
	scheme := "http"
	if tlsConf != nil {
		srv.TLSConfig = tlsConf.httpServer
		ln = tls.NewListener(ln, tlsConf.httpServer)
		scheme = "https"
	}
	go func() { served <- srv.Serve(ln) }()
	hlog.Info("serving "+scheme, "addr", ln.Addr().String())

	if o.join != "" {
		if n.HadState() {
			// Already a member: start from our own state at once; a
			// re-join only refreshes our HTTP address on the leader.
			go func() {
				rctx, stop := n.rejoinContext(ctx)
				defer stop()
				jctx, cancel := context.WithTimeout(rctx, o.joinTimeout)
				defer cancel()
				if err := joinCluster(jctx, log.Named("join"), joins, o.join, o.raftAdvertise, o.httpAdvertise, false, n.OpenRaft); err != nil {
					log.Warn("re-join failed (this node keeps its existing membership)", "error", err)
				}
			}()
		} else {
			jctx, cancel := context.WithTimeout(ctx, o.joinTimeout)
			err := joinCluster(jctx, log.Named("join"), joins, o.join, o.raftAdvertise, o.httpAdvertise, true, n.OpenRaft)
			cancel()
			if err != nil && ctx.Err() == nil {
				return errors.Join(err, shutdown(srv, n, log))
			}
		}
	}

	select {
	case <-ctx.Done():
		log.Info("signal received, shutting down (a second signal exits at once)")
	case err := <-served:
		return errors.Join(fmt.Errorf("http server: %w", err), shutdown(srv, n, log))
	}
	forceExitOnSignal(log)
	return shutdown(srv, n, log)
}

// forceExitOnSignal lets a second SIGINT or SIGTERM end a shutdown that takes
// too long. Exiting then is safe for the data (every acknowledged write is
// on disk), only not tidy: exit code 1.
func forceExitOnSignal(log hclog.Logger) {
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-again
		log.Error("second signal: exiting now, without a clean shutdown")
		os.Exit(1)
	}()
}

// httpDrain bounds how long a stop waits for requests in flight. A write
// waits at most applyTimeout for Raft; past the drain, its connection is
// closed and it ends when the node stops.
const httpDrain = 5 * time.Second

func shutdown(srv *http.Server, n *node, log hclog.Logger) error {
	// Requests waiting on Raft (strong reads, joins) give up now, so the
	// drain below is short; writes already queued complete.
	n.BeginShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), httpDrain)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
		// Not a failure of the stop: a client that keeps a request open
		// (a slow body, say) must not turn a clean stop into exit 1.
		log.Warn("requests still in flight after the drain; closing their connections", "drain", httpDrain)
		if err := srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("http close: %w", err))
		}
	} else if err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := n.Shutdown(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		log.Info("stopped cleanly")
	}
	return errors.Join(errs...)
}

// countSet is how many of ss are not empty.
func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// extraRoutes are the routes beside the API: /metrics, and Go's profiler
// under /debug/pprof/ when -pprof asks for it. The profiler is behind the
// token when there is one: its command line, heap and goroutine dumps show
// this node's flags and paths, and a CPU profile or trace costs the node
// CPU for as long as the caller asks.
func extraRoutes(met *metrics, withPprof bool, token string) map[string]http.Handler {
	r := map[string]http.Handler{"/metrics": met.handler()}
	if withPprof {
		r["/debug/pprof/"] = requireToken(token, pprof.Index) // and the named profiles under it
		r["/debug/pprof/cmdline"] = requireToken(token, pprof.Cmdline)
		r["/debug/pprof/profile"] = requireToken(token, pprof.Profile)
		r["/debug/pprof/symbol"] = requireToken(token, pprof.Symbol)
		r["/debug/pprof/trace"] = requireToken(token, pprof.Trace)
	}
	return r
}

// bodyTimeout bounds how long a request's body may take to arrive, counted
// from the end of its headers (ReadHeaderTimeout bounds those). 30 s is
// 100 KiB/s for the largest form body (maxFormBody, about 3 MiB).
const bodyTimeout = 30 * time.Second

// limitBody gives a request that has a body d to send it all. Without a
// deadline a client trickling a body holds its connection and handler for
// ever, whether or not the handler reads the body: net/http reads up to
// 256 KiB of an unread body before it answers (a 401, a 405), to keep the
// connection usable.
//
// Only requests with a body get the deadline, rather than every request
// through http.Server.ReadTimeout: net/http's background read turns a
// passed deadline into a cancelled request context, which would end /events
// streams. Past the body, that is all it does: a write whose body came late
// and whose commit is slow is still answered (set and delete do not watch
// the context).
func limitBody(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 { // -1: chunked, length unknown
			// Fails only for a writer that cannot set deadlines, which
			// net/http's HTTP/1 and HTTP/2 writers both can.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}
