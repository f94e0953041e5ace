package testenv_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
)

// TestPrometheusScrapes checks what the metrics tests rely on: the server
// scrapes a loopback target every second and answers PromQL over its API.
func TestPrometheusScrapes(t *testing.T) {
	var hits atomic.Int64
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("# HELP demo_total Demo.\n# TYPE demo_total counter\ndemo_total{kind=\"a\"} 1\ndemo_scrapes " + strconv.FormatInt(n, 10) + "\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	start := time.Now()
	p := testenv.StartPrometheus(t, []string{ln.Addr().String()})
	t.Logf("prometheus ready on %s after %v", p.URL, time.Since(start).Round(time.Millisecond))
	res := p.WaitQuery(t, `sum(demo_total{job="gingov"})`, 15*time.Second, func(s []testenv.PromSample) bool {
		return len(s) == 1 && s[0].Value == 1
	})
	t.Logf("sum(demo_total) = %v after %v", res[0].Value, time.Since(start).Round(time.Millisecond))
	p.WaitQuery(t, `max_over_time(demo_scrapes[1m])`, 15*time.Second, func(s []testenv.PromSample) bool {
		return len(s) == 1 && s[0].Value >= 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	targets, err := p.Targets(ctx)
	if err != nil || len(targets) != 1 || targets[0].Health != "up" || !strings.Contains(targets[0].ScrapeURL, ln.Addr().String()) {
		t.Fatalf("targets %+v, %v", targets, err)
	}
	if _, err := p.Query(ctx, "sum("); err == nil {
		t.Fatal("a bad query answered")
	}
}

// TestPromtoolCheckMetrics runs promtool on a clean exposition and on one
// breaking the naming conventions.
func TestPromtoolCheckMetrics(t *testing.T) {
	good := "# HELP demo_requests_total Requests.\n# TYPE demo_requests_total counter\ndemo_requests_total 3\n"
	if out := testenv.PromtoolCheckMetrics(t, []byte(good)); out != "" {
		t.Fatalf("clean exposition reported: %s", out)
	}
	bad := "# HELP demo_requests Requests.\n# TYPE demo_requests counter\ndemo_requests 3\n"
	if out := testenv.PromtoolCheckMetrics(t, []byte(bad)); !strings.Contains(out, "counter metrics should have \"_total\" suffix") {
		t.Fatalf("counter without _total: %q", out)
	}
}
