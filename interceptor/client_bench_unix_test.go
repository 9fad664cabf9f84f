//go:build unix

package interceptor

import (
	"syscall"
	"time"
)

// cliCPUTime is the CPU time the process has used, user and system. On a
// shared machine it measures a benchmark's cost better than wall time.
func cliCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
