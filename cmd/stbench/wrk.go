package main

// -client wrk: stale gets driven by wrk (Debian's package `wrk`, a C load
// generator that costs the servers' cores far less than a Go client), and,
// in the same sitting, the same load against a bare net/http handler that
// writes a fixed 100-byte body: the ceiling of any net/http server here.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk ask for a random preloaded key on every request.
const wrkScript = `-- stbench: a random key of the preloaded keyspace per request
local keys = %d
local prefix = %q
local seeded = false
request = function()
  if not seeded then
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    seeded = true
  end
  return wrk.format("GET", prefix .. math.random(0, keys - 1))
end
`

// wrkResult is what one wrk run reports.
type wrkResult struct {
	rps           float64
	p50, p90, p99 time.Duration
	errors        int64 // non-2xx answers plus socket errors
}

// runWrk runs wrk against base (host:port) with the target's path for gets.
func runWrk(ctx context.Context, cfg *config, dir, host, prefix string, clients int) (*wrkResult, error) {
	script := filepath.Join(dir, "get.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(wrkScript, cfg.keys, prefix)), 0o644); err != nil {
		return nil, err
	}
	threads := min(2, clients)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(clients),
		"-d", strconv.Itoa(max(1, int(cfg.duration.Seconds()))) + "s", "--latency", "-s", script, "http://" + host}
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads wrk's report: "Requests/sec:", the --latency
// distribution and the error lines.
func parseWrk(out string) (*wrkResult, error) {
	r := &wrkResult{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && (f[0] == "50%" || f[0] == "90%" || f[0] == "99%"):
			d, err := time.ParseDuration(strings.Replace(f[1], "us", "µs", 1))
			if err != nil {
				return nil, fmt.Errorf("wrk latency %q: %w", f[1], err)
			}
			switch f[0] {
			case "50%":
				r.p50 = d
			case "90%":
				r.p90 = d
			default:
				r.p99 = d
			}
		case len(f) >= 5 && f[0] == "Non-2xx":
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			r.errors += n
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			for _, part := range strings.Split(strings.Join(f[2:], " "), ",") {
				if kv := strings.Fields(part); len(kv) == 2 {
					n, _ := strconv.ParseInt(kv[1], 10, 64)
					r.errors += n
				}
			}
		}
	}
	if r.rps == 0 {
		return nil, fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	return r, nil
}

// bareBody is what the bare handler answers: 100 bytes, as the
// benchmark's values are.
var bareBody = []byte(strings.Repeat("b", 99) + "\n")

// serveBare is the bare reference: net/http with one handler that writes a
// fixed body, nothing else. stbench runs it as a child process (-serve-bare)
// so that it, like the nodes, has its own CPU accounting. With timeouts it
// also has stcached's server settings (a read-header and an idle timeout,
// which cost a deadline change per request) and sets the Content-Type as
// stcached does (which costs net/http a header copy): the part of the
// distance to the bare handler that stcached keeps on purpose.
func serveBare(addr string, timeouts bool) error {
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(bareBody)
	})}
	if timeouts {
		textPlain := []string{"text/plain; charset=utf-8"}
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Content-Type"] = textPlain
			_, _ = w.Write(bareBody)
		})
		// As in stcached's main.go.
		srv.ReadHeaderTimeout, srv.IdleTimeout = 10*time.Second, 2*time.Minute
	}
	return srv.ListenAndServe()
}

// startBare starts `stbench -serve-bare` on a free port and waits until it
// answers; stop ends it.
func startBare(ctx context.Context, timeouts bool) (addr string, pid int, stop func(), err error) {
	addr, err = freeAddr()
	if err != nil {
		return "", 0, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(self, "-serve-bare", addr, "-serve-bare-timeouts="+strconv.FormatBool(timeouts))
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, cmd.Process.Pid, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", 0, nil, errors.Join(errors.New("bare server did not come up"), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
