package main

import "syscall"

// sysProcAttr puts a node in its own process group, so a terminal's Ctrl-C
// reaches only stbench, which then stops the nodes itself; and has the
// kernel kill the node if stbench dies without cleaning up (SIGKILL,
// a crash), so no node outlives the benchmark.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
