package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1<<62 + 12345, 1<<64 - 1} {
		i := bucket(v)
		if i < 0 || i >= nBuckets {
			t.Fatalf("bucket(%d) = %d out of [0, %d)", v, i, nBuckets)
		}
		if up := upper(i); up < v || (i > 0 && upper(i-1) >= v) {
			t.Errorf("value %d in bucket %d: upper %d, previous upper %d", v, i, up, upper(i-1))
		}
		if up := upper(i); float64(up-v) > float64(v)/64 {
			t.Errorf("value %d: bucket upper bound %d more than 1/64 above it", v, up)
		}
	}
}

func TestQuantile(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	// 1..10000 µs, shuffled, merged from two halves.
	vals := make([]time.Duration, 10000)
	for i := range vals {
		vals[i] = time.Duration(i+1) * time.Microsecond
	}
	rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	var a, b Histogram
	for i, v := range vals {
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	h.Merge(&a)
	h.Merge(&b)
	if h.Count() != 10000 {
		t.Fatalf("count %d", h.Count())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0, time.Microsecond}, {1, 10000 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got-c.want) > float64(c.want)/64 {
			t.Errorf("quantile %v = %v, want %v (+1/64 at most)", c.q, got, c.want)
		}
	}
}

const pong = `{"message":"pong"}`

func server(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestRun(t *testing.T) {
	var served atomic.Int64
	addr := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ping" || r.Header.Get("User-Agent") != "bench" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(pong))
	})
	res, err := Run(t.Context(), Config{Addr: addr, Want: []byte(pong), Conns: 4, Warmup: 20 * time.Millisecond, Duration: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 4 || res.Requests > served.Load() || res.RPS() <= 0 {
		t.Fatalf("%d requests recorded of %d served, %.0f/s", res.Requests, served.Load(), res.RPS())
	}
	if res.Elapsed < 140*time.Millisecond || res.Elapsed > time.Second {
		t.Errorf("elapsed %v for a 150 ms window", res.Elapsed)
	}
	if p50, p99 := res.Latency.Quantile(0.5), res.Latency.Quantile(0.99); p50 <= 0 || p99 < p50 {
		t.Errorf("p50 %v, p99 %v", p50, p99)
	}
}

func TestRunFails(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"status": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(pong))
		},
		"body":   func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"message":"pang"}`)) },
		"length": func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) },
		"chunked": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(pong))
			w.(http.Flusher).Flush()
		},
		"close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write([]byte(pong))
		},
	} {
		t.Run(name, func(t *testing.T) {
			addr := server(t, h)
			_, err := Run(t.Context(), Config{Addr: addr, Want: []byte(pong), Conns: 2, Duration: 50 * time.Millisecond})
			if err == nil {
				t.Fatal("run passed")
			}
			if name == "status" && !errors.Is(err, errStatus) || (name == "chunked" || name == "close") && !errors.Is(err, errFraming) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

func TestRunCanceled(t *testing.T) {
	addr := server(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(pong)) })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Run(ctx, Config{Addr: addr, Want: []byte(pong), Conns: 2, Duration: 10 * time.Second}); err == nil {
		t.Fatal("canceled run passed")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("canceled run took %v", d)
	}
}
