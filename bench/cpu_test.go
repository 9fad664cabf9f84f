package bench

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user and system) this process has used: every
// goroutine, client and server and garbage collector alike.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports the process CPU time per op of a benchmark: on a machine
// shared with other work, wall time per op grows with the load while CPU time
// per op mostly does not, and capacity on idle cores follows from it.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{start: processCPU()} }

// report records cpu-ns/op for n ops.
func (m cpuMeter) report(b *testing.B, n int) time.Duration {
	per := (processCPU() - m.start) / time.Duration(max(n, 1))
	b.ReportMetric(float64(per.Nanoseconds()), "cpu-ns/op")
	return per
}
