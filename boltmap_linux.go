package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseFileMap calls madvise(MADV_DONTNEED) on every shared map of the
// file at path in this process, found in /proc/self/maps by device and
// inode. Only shared maps: in a private one, pages written since (copies)
// would be lost. The caller keeps the maps from moving meanwhile.
func releaseFileMap(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	ino := strconv.FormatUint(st.Ino, 10)

	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("read this process's maps: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] != ino || fields[3] != dev || len(fields[1]) < 4 || fields[1][3] != 's' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return fmt.Errorf("read this process's maps: bad range %q", fields[0])
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise %s map %s: %w", path, fields[0], errno)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read this process's maps: %w", err)
	}
	return nil
}
