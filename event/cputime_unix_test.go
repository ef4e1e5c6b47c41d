//go:build unix

package event

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time this process has used, user plus system.
// Benchmarks report it per operation because wall time on a shared machine
// also counts time spent waiting for a CPU.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
