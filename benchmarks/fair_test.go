package benchmarks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gingov/gingov/internal/benchping"
)

// TestFairness checks that both sides of every row do what the row says
// before they are timed: 200 with the same body, one JSON log line per
// request where the row logs (with the trace ID where it also traces), one
// exported span per request at 100% sampling, and request metrics in the
// registry where the row counts.
func TestFairness(t *testing.T) {
	const body = `{"message":"pong"}`
	for _, k := range kases {
		for _, sample := range rowSamplings(k) {
			for _, side := range sides(k) {
				name := k.row + "/" + strconv.Itoa(sample) + "/" + side
				t.Run(name, func(t *testing.T) {
					h, e := buildEnv(t, k, side, sample)
					e.log.keep = true
					s := k.gin
					if side != "gin" {
						s = k.krat
					}
					const n = 3
					for range n {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, benchping.Request(t))
						if w.Code != http.StatusOK || w.Body.String() != body {
							t.Fatalf("got %d %q, want 200 %s", w.Code, w.Body.String(), body)
						}
						if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
							t.Fatalf("Content-Type %q", ct)
						}
					}
					checkLogs(t, e, s, sample, n)
					if err := e.tp.ForceFlush(context.Background()); err != nil {
						t.Fatal(err)
					}
					// At 10% the sampler may export any number of the n spans.
					wantSpans := int64(0)
					if s.tracing {
						wantSpans = n
					}
					if got := e.spans.spans.Load(); (sample == 100 || !s.tracing) && got != wantSpans {
						t.Errorf("exported %d spans, want %d", got, wantSpans)
					}
					checkMetrics(t, e, s, n)
				})
			}
		}
	}
}

func checkLogs(t *testing.T, e *env, s stack, sample, n int) {
	t.Helper()
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	want := 0
	if s.logging {
		want = n
	}
	if len(e.log.lines) != want {
		t.Fatalf("%d log lines, want %d: %q", len(e.log.lines), want, e.log.lines)
	}
	for _, line := range e.log.lines {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if rec["level"] != "INFO" || rec["msg"] == nil || rec["time"] == nil {
			t.Errorf("log line lacks level INFO, msg or time: %s", line)
		}
		if s.tracing && sample == 100 {
			if id, _ := rec["trace_id"].(string); len(id) != 32 {
				t.Errorf("log line lacks the trace ID: %s", line)
			}
		}
	}
}

func checkMetrics(t *testing.T, e *env, s stack, n int) {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, mf := range mfs {
		if !strings.Contains(mf.GetName(), "requests") {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				counted += uint64(c.GetValue())
			}
		}
	}
	switch {
	case s.metrics && counted != uint64(n):
		t.Errorf("request counters sum to %d, want %d", counted, n)
	case !s.metrics && len(mfs) != 0:
		t.Errorf("metrics registered in a row without metrics: %d families", len(mfs))
	}
}
