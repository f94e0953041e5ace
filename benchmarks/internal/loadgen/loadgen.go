// Package loadgen is the end-to-end load generator of the benchmarks
// (cmd/loadgen): a fixed number of keep-alive HTTP/1.1 connections, each
// sending the same GET back to back for a fixed time after an unrecorded
// warm-up, every answer checked (status 200, Content-Length, the expected
// body), latencies in a log-linear histogram.
//
// It speaks HTTP/1.1 over plain TCP connections with one pre-built request
// and a reused read buffer, so that the generator costs far less CPU per
// request than the server it drives.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Config says what to load and for how long.
type Config struct {
	Addr     string        // host:port
	Path     string        // request path; "/ping" when empty
	Want     []byte        // the expected body of every answer
	Conns    int           // keep-alive connections, each with one request in flight
	Warmup   time.Duration // sent but not recorded
	Duration time.Duration // recorded
}

// Result is what a run measured.
type Result struct {
	Requests int64         // answers recorded (started within the measured window)
	Elapsed  time.Duration // from the end of the warm-up to the last recorded answer
	Latency  *Histogram
}

// RPS returns the requests answered per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Run loads cfg.Addr as cfg says. Any dial or I/O error, any answer other
// than 200 with exactly the expected body, and any answer that closes the
// connection or is not sized by Content-Length fails the run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Conns < 1 || cfg.Duration <= 0 || cfg.Warmup < 0 {
		return Result{}, fmt.Errorf("loadgen: %d connections for %v after %v", cfg.Conns, cfg.Duration, cfg.Warmup)
	}
	path := cfg.Path
	if path == "" {
		path = "/ping"
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + cfg.Addr + "\r\nUser-Agent: bench\r\n\r\n")

	start := time.Now()
	measureFrom, stop := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	type connResult struct {
		n    int64
		last time.Time
		hist Histogram
		err  error
	}
	res := make([]connResult, cfg.Conns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i := range res {
		wg.Go(func() {
			r := &res[i]
			r.err = func() error {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
				if err != nil {
					return err
				}
				defer conn.Close()
				stopConn := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
				defer stopConn()
				if err := conn.SetDeadline(stop.Add(10 * time.Second)); err != nil {
					return err
				}
				br := bufio.NewReaderSize(conn, 4096)
				body := make([]byte, len(cfg.Want)+1)
				for {
					t0 := time.Now()
					if !t0.Before(stop) {
						return nil
					}
					if _, err := conn.Write(req); err != nil {
						return err
					}
					if err := readAnswer(br, body, cfg.Want); err != nil {
						return err
					}
					if !t0.Before(measureFrom) {
						t1 := time.Now()
						r.hist.Record(t1.Sub(t0))
						r.n++
						r.last = t1
					}
				}
			}()
			if r.err != nil {
				cancel() // one failure ends the run
			}
		})
	}
	wg.Wait()
	out := Result{Latency: &Histogram{}}
	var errs []error
	var last time.Time
	for i := range res {
		if res[i].err != nil {
			errs = append(errs, fmt.Errorf("connection %d: %w", i, res[i].err))
		}
		out.Requests += res[i].n
		out.Latency.Merge(&res[i].hist)
		if res[i].last.After(last) {
			last = res[i].last
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	if out.Requests == 0 {
		return Result{}, errors.New("loadgen: no answer in the measured window")
	}
	out.Elapsed = last.Sub(measureFrom)
	return out, nil
}

var (
	errStatus  = errors.New("status is not 200")
	errFraming = errors.New("answer not sized by Content-Length, or closing the connection")
)

// readAnswer reads one answer from br and checks it against want; body is
// a scratch buffer one byte longer than want.
func readAnswer(br *bufio.Reader, body, want []byte) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("%w: %q", errStatus, bytes.TrimSpace(line))
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 { // "\r\n": end of the header
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("loadgen: header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil {
				return fmt.Errorf("loadgen: Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")),
			bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			return fmt.Errorf("%w: %s", errFraming, bytes.TrimSpace(line))
		}
	}
	if length < 0 {
		return errFraming
	}
	if length != len(want) {
		_, _ = io.CopyN(io.Discard, br, int64(min(length, 4096)))
		return fmt.Errorf("loadgen: body of %d bytes, want %q", length, want)
	}
	if _, err := io.ReadFull(br, body[:length]); err != nil {
		return err
	}
	if !bytes.Equal(body[:length], want) {
		return fmt.Errorf("loadgen: body %q, want %q", body[:length], want)
	}
	return nil
}
