package benchmarks

// The end-to-end runs are separate processes (cmd/benchserver, cmd/loadgen,
// driven by scripts/bench.sh); this checks, briefly and in process, that
// every side they serve answers the load generator over real connections.

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/benchmarks/internal/loadgen"
)

func TestE2E(t *testing.T) {
	for _, s := range []struct{ side, row string }{{"gin", "bare"}, {"gin", "full"}, {"kratos", "full"}, {"kratos3", "full"}} {
		t.Run(s.side+"-"+s.row, func(t *testing.T) {
			served, err := NewHandler(s.side, s.row, 100)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(served.Handler)
			res, err := loadgen.Run(t.Context(), loadgen.Config{
				Addr: strings.TrimPrefix(srv.URL, "http://"), Want: []byte(`{"message":"pong"}`),
				Conns: 4, Warmup: 20 * time.Millisecond, Duration: 100 * time.Millisecond,
			})
			srv.Close()
			served.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests < 4 || res.RPS() <= 0 {
				t.Fatalf("implausible result: %d requests, %.0f/s", res.Requests, res.RPS())
			}
			// Every request, warm-up included, was traced and logged.
			if s.row == "full" && (served.Spans() < res.Requests || served.LogLines() < res.Requests) {
				t.Errorf("%d requests recorded, %d spans exported, %d log lines", res.Requests, served.Spans(), served.LogLines())
			}
		})
	}
}

func TestNewHandlerRejects(t *testing.T) {
	for _, c := range []struct {
		side, row string
		sample    int
	}{{"echo", "full", 10}, {"kratos", "full-nosentinel", 10}, {"gin", "nope", 10}, {"gin", "full", 0}, {"kratos3", "full", 101}} {
		if s, err := NewHandler(c.side, c.row, c.sample); err == nil {
			s.Close()
			t.Errorf("NewHandler(%q, %q, %d) passed", c.side, c.row, c.sample)
		}
	}
}
