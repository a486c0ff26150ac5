//go:build !linux

package main

// releaseFileMap does nothing outside Linux: there is no /proc/self/maps to
// find BoltDB's map in, so its pages stay mapped, as without boltmap.go.
func releaseFileMap(string) error { return nil }
