//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere the deferred
// cleanup is the only way nodes are stopped.
func sysProcAttr() *syscall.SysProcAttr { return nil }
