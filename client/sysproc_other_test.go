//go:build !linux

package client_test

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere TestMain's
// cleanup is the only way nodes are stopped.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// waitStopped: without /proc, trust the signal.
func waitStopped(int) error { return nil }
