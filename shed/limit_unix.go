//go:build unix

package shed

import "syscall"

// fileLimit is the soft limit on the process's open files; 0 when it cannot be read.
func fileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
