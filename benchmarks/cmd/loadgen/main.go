// Command loadgen drives one benchserver for a fixed time and prints one
// result line in the format of `go test -bench`, so that benchstat and
// benchreport read it like any benchmark:
//
//	BenchmarkE2E/sample=10/server=gingov-full 1 24500 ns/op 40816 req/s 750 p50-µs 2700 p99-µs 23.9 cpu-µs/op
//
// ns/op is 1e9 / req/s; p50/p99 are latency quantiles from an HDR-style
// histogram (±1.6%); cpu-µs/op (with -pid) is the CPU time the server
// process used per answer during the measured window, from /proc.
//
// Usage (the server on core 0, the generator on core 1, as scripts/bench.sh runs them):
//
//	taskset -c 1 loadgen -addr 127.0.0.1:PORT -conns 32 -duration 5s -name BenchmarkE2E/server=gin-bare -pid PID
//
// It only connects to loopback addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/gingov/gingov/benchmarks/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address, host:port on loopback")
	path := fs.String("path", "/ping", "request path")
	want := fs.String("want", `{"message":"pong"}`, "the body every answer must have")
	conns := fs.Int("conns", 32, "keep-alive connections")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unrecorded warm-up")
	duration := fs.Duration("duration", 5*time.Second, "recorded time")
	name := fs.String("name", "BenchmarkE2E", "benchmark name of the result line")
	pid := fs.Int("pid", 0, "server process whose CPU time per answer to report (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopback(*addr); err != nil {
		return err
	}
	if strings.ContainsAny(*name, " \t\n") || !strings.HasPrefix(*name, "Benchmark") {
		return fmt.Errorf("-name %q: want a benchmark name without spaces", *name)
	}
	cfg := loadgen.Config{Addr: *addr, Path: *path, Want: []byte(*want), Conns: *conns, Warmup: *warmup, Duration: *duration}

	// The server's CPU time over the measured window, read when it opens
	// and when it closes.
	type reading struct {
		d   time.Duration
		err error
	}
	var opened, closed chan reading
	if *pid > 0 {
		if _, err := procCPU(*pid); err != nil {
			return err
		}
		opened, closed = make(chan reading, 1), make(chan reading, 1)
		read := func(c chan reading) func() {
			return func() { d, err := procCPU(*pid); c <- reading{d, err} }
		}
		defer time.AfterFunc(*warmup, read(opened)).Stop()
		defer time.AfterFunc(*warmup+*duration, read(closed)).Stop()
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\t1\t%.0f ns/op\t%.0f req/s\t%d p50-µs\t%d p99-µs",
		*name, 1e9/res.RPS(), res.RPS(), res.Latency.Quantile(0.50).Microseconds(), res.Latency.Quantile(0.99).Microseconds())
	if *pid > 0 {
		// Run returns once the window has closed, so both timers fire.
		r0, r1 := <-opened, <-closed
		if err := errors.Join(r0.err, r1.err); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\t%.2f cpu-µs/op", float64((r1.d-r0.d).Microseconds())/float64(res.Requests))
	}
	fmt.Fprintln(stdout)
	return nil
}

// loopback checks that addr is host:port with a loopback IP host.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: not a loopback IP address", addr)
	}
	return nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clockTick = 10 * time.Millisecond

// procCPU returns the user + system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces): state is
	// field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}
