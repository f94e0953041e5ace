//go:build unix

package benchping

import "syscall"

// processCPU returns the CPU time the process has used so far (user and
// system, every thread: the garbage collector and background goroutines
// such as a batch span processor count), in nanoseconds; 0 when unknown.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
