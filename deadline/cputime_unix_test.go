//go:build unix

package deadline_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime starts counting the process's CPU time (user and system, as
// getrusage reports it); the returned func reports it per operation as
// cpu-ns/op. On a machine shared with other work it varies far less than
// the wall-clock ns/op, which also counts the time spent waiting for a CPU.
// Call it as defer cpuTime(b)().
func cpuTime(b *testing.B) func() {
	start := rusage(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(rusage(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func rusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
