package client_test

import "syscall"

// sysProcAttr has the kernel kill a node if the test binary dies without
// cleaning up (a timeout's panic, SIGKILL), so no node outlives the tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
