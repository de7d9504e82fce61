// Package proc reads a process's CPU time from /proc, for the per-resource figures of the
// load test: the server's own and the redis-server's, read in the same run.
package proc

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// tick is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux the
// bench runs on (the kernel's ABI for /proc, whatever CONFIG_HZ is).
const tick = 10 * time.Millisecond

// CPU returns the CPU time, user and system, that the process pid ("self" for this one) and
// all its threads have spent so far, or false where /proc does not say (not Linux, no such
// process). Its resolution is 10 ms: measure over seconds.
func CPU(pid string) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: the fields counted are after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	u, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * tick, true
}
