package benchmarks

// End to end: each side as a real HTTP server on 127.0.0.1 (a free port
// the kernel picks), driven by a Go load generator in the same process:
// a fixed number of keep-alive connections, each sending GET /ping back
// to back for a fixed time. Server and generator share the machine's
// cores, as wrk and the server did for the anchors' figures.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

var (
	e2eDuration = flag.Duration("e2e.duration", 5*time.Second, "measured time of each BenchmarkE2E run")
	e2eConns    = flag.Int("e2e.conns", 32, "concurrent keep-alive connections of BenchmarkE2E")
)

// e2eServers are the servers BenchmarkE2E drives, at 10% sampling.
var e2eServers = []struct {
	name string
	k    kase
	side string
}{
	{"gin-bare", kases[0], "gin"},
	{"gingov-full", kaseNamed("full"), "gin"},
	{"kratos-bare", kases[0], "kratos"},
	{"kratos-full", kaseNamed("full"), "kratos"},
}

const e2eSample = 10

func kaseNamed(row string) kase {
	for _, k := range kases {
		if k.row == row {
			return k
		}
	}
	panic("benchmarks: no row " + row)
}

// BenchmarkE2E reports requests/s and latency percentiles of each server
// under e2e.conns connections for e2e.duration; run it with -benchtime 1x
// (each run is one measurement; ns/op is reported as 1e9 / requests/s).
func BenchmarkE2E(b *testing.B) {
	for _, s := range e2eServers {
		b.Run("server="+s.name, func(b *testing.B) {
			url := serve(b, build(b, s.k, s.side, e2eSample))
			var res loadResult
			for range b.N {
				var err error
				if res, err = load(b.Context(), url, *e2eConns, *e2eDuration); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(1e9/res.rps(), "ns/op")
			b.ReportMetric(res.rps(), "req/s")
			b.ReportMetric(float64(res.quantile(0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(res.quantile(0.99).Microseconds()), "p99-µs")
		})
	}
}

// TestE2E runs the load generator briefly against each server: it must
// complete requests on every connection without a single failure.
func TestE2E(t *testing.T) {
	for _, s := range e2eServers {
		t.Run(s.name, func(t *testing.T) {
			url := serve(t, build(t, s.k, s.side, e2eSample))
			res, err := load(t.Context(), url, 4, 150*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.latencies) < 4 || res.rps() <= 0 || res.quantile(0.99) < res.quantile(0.5) {
				t.Fatalf("implausible result: %d requests, %.0f/s", len(res.latencies), res.rps())
			}
		})
	}
}

// serve runs h on a free loopback port until the test ends and returns
// its /ping URL. Both sides run in the same plain http.Server.
func serve(tb testing.TB, h http.Handler) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Error(err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			tb.Error(err)
		}
	})
	return "http://" + lis.Addr().String() + "/ping"
}

type loadResult struct {
	elapsed   time.Duration
	latencies []time.Duration // sorted
}

func (r loadResult) rps() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

func (r loadResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

// load sends GET url back to back on conns keep-alive connections: a
// warm-up of a tenth of d (at least 100 ms), not recorded, then d
// measured. Any error, non-200 answer or unexpected body fails the run.
func load(ctx context.Context, url string, conns int, d time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	want := []byte(`{"message":"pong"}`)

	warm := max(d/10, 100*time.Millisecond)
	start := time.Now()
	measureFrom, stop := start.Add(warm), start.Add(warm+d)
	per := make([][]time.Duration, conns)
	ends := make([]time.Time, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("User-Agent", "bench")
			lat := make([]time.Duration, 0, 1<<14)
			buf := make([]byte, 64)
			for {
				t0 := time.Now()
				if t0.After(stop) {
					break
				}
				resp, err := client.Do(req)
				if err != nil {
					errs[i] = err
					return
				}
				n, err := io.ReadFull(resp.Body, buf[:len(want)])
				extra, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					errs[i] = fmt.Errorf("benchmarks: reading an answer: %w", err)
					return
				}
				if resp.StatusCode != http.StatusOK || extra != 0 || !bytes.Equal(buf[:n], want) {
					errs[i] = fmt.Errorf("benchmarks: answer %d %q (+%d bytes)", resp.StatusCode, buf[:n], extra)
					return
				}
				if !t0.Before(measureFrom) {
					end := time.Now()
					lat = append(lat, end.Sub(t0))
					ends[i] = end
				}
			}
			per[i] = lat
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return loadResult{}, err
	}
	// The measured window runs to the last recorded answer: requests
	// started before stop are counted whole.
	res := loadResult{elapsed: d}
	if last := slices.MaxFunc(ends, func(a, b time.Time) int { return a.Compare(b) }); last.After(measureFrom) {
		res.elapsed = last.Sub(measureFrom)
	}
	for _, l := range per {
		res.latencies = append(res.latencies, l...)
	}
	slices.Sort(res.latencies)
	return res, nil
}
