// Command benchserver serves GET /ping through one side of the benchmarks'
// comparison, built exactly as BenchmarkKratos builds it, in a process of
// its own for the end-to-end runs of scripts/bench.sh. It prints the
// address it listens on (one line) and serves until SIGINT or SIGTERM,
// then says on stderr how many spans it exported and log lines it wrote.
//
//	taskset -c 0 benchserver -side gingov -sample 0.1 -addr 127.0.0.1:0
//
// Sides: gin (bare Gin), gingov (gingov's full chain on Gin), kratos2
// (Kratos v2.9.2's full chain), kratos3 (Kratos v3.0.0's full chain); -row
// picks another row of the comparison. Every side runs in the same plain
// net/http server. It only listens on loopback addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gingov/gingov/benchmarks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

// sides maps -side to the comparison's side and default row.
var sides = map[string]struct{ side, row string }{
	"gin":     {"gin", "bare"},
	"gingov":  {"gin", "full"},
	"kratos2": {"kratos", "full"},
	"kratos3": {"kratos3", "full"},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	side := fs.String("side", "", "gin, gingov, kratos2 or kratos3")
	row := fs.String("row", "", "row of the comparison (default: bare for gin, full for the others)")
	sample := fs.Float64("sample", 0.1, "trace sampling ratio, 0.01 to 1 in steps of 0.01")
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, ok := sides[*side]
	if !ok {
		return fmt.Errorf("-side %q: want gin, gingov, kratos2 or kratos3", *side)
	}
	if *row != "" {
		s.row = *row
	}
	percent := math.Round(*sample * 100)
	if math.Abs(percent-*sample*100) > 1e-9 {
		return fmt.Errorf("-sample %v: want a whole percentage", *sample)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: not a loopback IP address", *addr)
	}

	served, err := benchmarks.NewHandler(s.side, s.row, int(percent))
	if err != nil {
		return err
	}
	defer served.Close()
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: served.Handler, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	fmt.Fprintln(stdout, lis.Addr().String())

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	served.Close() // flushes the batch span processor
	fmt.Fprintf(stderr, "benchserver: %s (row %s, %v%% sampled): %d spans exported, %d log lines\n",
		*side, s.row, percent, served.Spans(), served.LogLines())
	return err
}
