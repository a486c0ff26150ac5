package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procMemory is a process's resident memory, from /proc/<pid>/status, in
// bytes: all of it, the anonymous part (the Go heap, stacks and runtime) and
// the file-backed part (the binary, and BoltDB's memory map of the Raft log,
// which is page cache the kernel may drop).
type procMemory struct{ rss, anon, file int64 }

func readProcMemory(pid int) (procMemory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMemory{}, err
	}
	defer f.Close()
	var m procMemory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, sc.Err()
}

// metricValue reads one unlabelled series from a node's /metrics.
func metricValue(ctx context.Context, n *node, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.scheme+n.http+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := api.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", n.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", n.name, err)
	}
	return 0, fmt.Errorf("%s /metrics: no %s", n.name, name)
}

// reportMemory prints the leader's memory per key: RSS (and its anonymous
// and file-backed parts) and the Go heap in use, each divided by the keys,
// and RSS as a multiple of the keys' and values' own bytes.
func reportMemory(ctx context.Context, leader *node, out io.Writer) error {
	st, err := getStatus(ctx, leader)
	if err != nil {
		return err
	}
	m, err := readProcMemory(leader.pid())
	if err != nil {
		return err
	}
	heap, err := metricValue(ctx, leader, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return err
	}
	if st.Keys == 0 {
		fmt.Fprintf(out, "memory: %s holds no keys; RSS %s\n", leader.name, mib(m.rss))
		return nil
	}
	perKey := func(b float64) float64 { return b / float64(st.Keys) }
	fmt.Fprintf(out, "memory: %s RSS %s for %d keys of %.1f MB keys and values: %.0f bytes/key RSS (%.2f× the raw bytes); "+
		"%.0f anonymous, %.0f file-backed (the binary, and BoltDB's map of the log with -log-store bolt); Go heap in use %.0f bytes/key\n",
		leader.name, mib(m.rss), st.Keys, float64(st.Bytes)/1e6, perKey(float64(m.rss)), float64(m.rss)/float64(max(st.Bytes, 1)),
		perKey(float64(m.anon)), perKey(float64(m.file)), perKey(heap))
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// rssSampler polls a process's RSS until stopped, keeping the largest.
type rssSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak procMemory
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if m, err := readProcMemory(pid); err == nil && m.rss > s.peak.rss {
				s.peak = m
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the largest RSS seen.
func (s *rssSampler) Stop() procMemory {
	close(s.stop)
	s.done.Wait()
	return s.peak
}
