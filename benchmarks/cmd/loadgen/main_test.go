package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"message":"pong"}`))
	}))
	defer srv.Close()
	var out strings.Builder
	args := []string{"-addr", strings.TrimPrefix(srv.URL, "http://"), "-conns", "2", "-warmup", "10ms", "-duration", "100ms",
		"-name", "BenchmarkE2E/server=test", "-pid", strconv.Itoa(os.Getpid())}
	if err := run(t.Context(), args, &out); err != nil {
		t.Fatal(err)
	}
	// name, iterations, then value-unit pairs, as `go test -bench` prints them.
	f := strings.Fields(out.String())
	if len(f) != 12 || f[0] != "BenchmarkE2E/server=test" || f[1] != "1" {
		t.Fatalf("result line %q", out.String())
	}
	for i, unit := range []string{"ns/op", "req/s", "p50-µs", "p99-µs", "cpu-µs/op"} {
		if f[3+2*i] != unit {
			t.Errorf("unit %d is %q, want %q", i, f[3+2*i], unit)
		}
		if v, err := strconv.ParseFloat(f[2+2*i], 64); err != nil || v < 0 {
			t.Errorf("%s value %q", unit, f[2+2*i])
		}
	}
}

func TestRejectsOtherHosts(t *testing.T) {
	for _, addr := range []string{"", "example.com:80", "10.0.0.1:80", "0.0.0.0:80"} {
		if err := run(t.Context(), []string{"-addr", addr}, &strings.Builder{}); err == nil {
			t.Errorf("-addr %q accepted", addr)
		}
	}
}
