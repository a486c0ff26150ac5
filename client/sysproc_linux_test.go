package client_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// sysProcAttr has the kernel kill a node if the test binary dies without
// cleaning up (a timeout's panic, SIGKILL), so no node outlives the tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitStopped waits until every thread of pid is stopped (SIGSTOP is
// delivered to each thread as it next runs: a request can still be served
// just after kill returns).
func waitStopped(pid int) error {
	return poll(5*time.Second, func() error {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return fmt.Errorf("threads of %d: %v", pid, err)
		}
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			// pid (comm) state ...: comm may hold spaces, so after the last ')'.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) {
				return fmt.Errorf("%s: %q", f, b)
			}
			if st := b[i+2]; st != 'T' && st != 't' {
				return fmt.Errorf("%s in state %c", f, st)
			}
		}
		return nil
	})
}
