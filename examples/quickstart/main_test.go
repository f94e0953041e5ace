package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstartServes runs the service on a free loopback port and checks
// its endpoints over real HTTP.
func TestQuickstartServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.Buffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", "stdout", logs, ready) }()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	traceID := checkEndpoints(t, base)

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	// The three signals of the failed /orders/7 share its trace id: the
	// envelope (checked by checkEndpoints), the access-log line and the
	// span written by the stdout exporter.
	var logged, spans int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"trace_id":"`+traceID+`"`) &&
			strings.Contains(line, `"route":"/orders/:id"`) {
			logged++
		}
		if strings.Contains(line, `"TraceID":"`+traceID+`"`) && strings.Contains(line, `"Name":"GET /orders/:id"`) {
			spans++
		}
	}
	if logged != 1 || spans != 1 {
		t.Fatalf("trace %s: %d access-log lines and %d spans, want 1 and 1\n%s", traceID, logged, spans, logs.String())
	}
	// Every request except /metrics and /healthz has a JSON access line.
	var access int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log or span line is not JSON: %q", line)
		}
		if m["msg"] == "request" {
			access++
			if m["request_id"] == "" || m["route"] == "/metrics" {
				t.Errorf("bad access line: %v", m)
			}
		}
	}
	if access != 7 {
		t.Fatalf("access lines = %d, want 7 (ping, orders, panic, unknown, 3x limited)\n%s", access, logs.String())
	}
}

// TestQuickstartBinary builds the command the README runs and checks it
// serves, then stops on SIGTERM.
func TestQuickstartBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	p := testenv.Start(t, bin, []string{"-addr", "127.0.0.1:" + strconv.Itoa(port)}, nil, "")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p.WaitReady(t, 10*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	checkEndpoints(t, base)
	http.DefaultClient.CloseIdleConnections()
	p.Stop()
	if !strings.Contains(p.Output(), `"msg":"quickstart stopped"`) {
		t.Fatalf("no graceful stop on SIGTERM:\n%s", p.Output())
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func envelope(t *testing.T, resp *http.Response, body string) errcode.Envelope {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != errcode.ContentType {
		t.Fatalf("content type %q", ct)
	}
	var env errcode.Envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("envelope %q: %v", body, err)
	}
	if env.RequestID == "" || env.RequestID != resp.Header.Get("X-Request-ID") {
		t.Fatalf("request id: envelope %q, header %q", env.RequestID, resp.Header.Get("X-Request-ID"))
	}
	return env
}

// checkEndpoints checks every endpoint and returns the trace id of the
// failed /orders/7, as its envelope and Trace-Id header gave it.
func checkEndpoints(t *testing.T, base string) (traceID string) {
	t.Helper()
	resp, body := get(t, base+"/ping")
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"message":"pong"}` || resp.Header.Get("X-Request-ID") == "" {
		t.Fatalf("/ping: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/orders/7")
	env := envelope(t, resp, body)
	if resp.StatusCode != 404 || env.Code != 1001001 || env.Reason != "ORDER_NOT_FOUND" || env.Metadata["order_id"] != "7" {
		t.Fatalf("/orders/7: %d %+v", resp.StatusCode, env)
	}
	if traceID = env.TraceID; len(traceID) != 32 || resp.Header.Get("Trace-Id") != traceID {
		t.Fatalf("/orders/7: envelope trace_id %q, Trace-Id header %q", traceID, resp.Header.Get("Trace-Id"))
	}
	resp, body = get(t, base+"/panic")
	if env := envelope(t, resp, body); resp.StatusCode != 500 || env.Reason != "INTERNAL_PANIC" || strings.Contains(body, "very wrong") {
		t.Fatalf("/panic: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/no/such/route")
	if env := envelope(t, resp, body); resp.StatusCode != 404 || env.Reason != "NOT_FOUND" {
		t.Fatalf("404: %d %s", resp.StatusCode, body)
	}
	for i := 0; i < 2; i++ {
		if resp, body := get(t, base+"/limited"); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") == "" {
			t.Fatalf("/limited %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body = get(t, base+"/limited")
	if env := envelope(t, resp, body); resp.StatusCode != 429 || env.Reason != "RATE_LIMITED" || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("/limited over the limit: %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`http_server_requests_total{method="GET",route="/ping",status="200"} 1`,
		`http_server_requests_total{method="GET",route="/panic",status="500"} 1`,
		`http_server_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`http_server_requests_total{method="GET",route="/limited",status="429"} 1`,
		`gingov_ratelimit_decisions_total{result="limited",rule="limited",source="local"} 1`,
		`gingov_ratelimit_decisions_total{result="allowed",rule="ip",source="local"} `,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	return traceID
}

// TestQuickstartMetrics drives traffic through every governed path of the
// service (a 429 from the limiter, a breaker opened by failures), then
// checks its /metrics with promtool, has a real Prometheus scrape it, and
// asks Prometheus for the limiter's rejections, the breaker's state and
// every query of the Grafana dashboard.
func TestQuickstartMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", "none", io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	}()
	base := "http://" + addr
	checkEndpoints(t, base)
	opened := false
	for i := 0; i < 10 && !opened; i++ {
		resp, body := get(t, base+"/flaky")
		env := envelope(t, resp, body)
		switch {
		case resp.StatusCode == 503 && env.Reason == "UNAVAILABLE":
		case resp.StatusCode == 503 && env.Reason == "CIRCUIT_OPEN":
			opened = true
		default:
			t.Fatalf("/flaky: %d %s", resp.StatusCode, body)
		}
	}
	if !opened {
		t.Fatal("/flaky: the breaker never opened")
	}

	resp, body := get(t, base+"/slow")
	if env := envelope(t, resp, body); resp.StatusCode != 504 || env.Reason != "DEADLINE_EXCEEDED" {
		t.Fatalf("/slow: %d %s", resp.StatusCode, body)
	}

	_, exposition := get(t, base+"/metrics")
	for _, want := range []string{
		`gingov_deadline_exceeded_total{method="GET",route="/slow",source="route"} 1`,
		`gingov_circuitbreaker_state{breaker="GET /flaky"} 2`,
		`gingov_circuitbreaker_transitions_total{breaker="GET /flaky",state="open"} 1`,
		`http_server_request_duration_seconds_bucket{method="GET",route="/ping",status="200",le="+Inf"} 1`,
		`http_server_request_size_bytes_count{method="GET",route="/ping",status="200"} 1`,
		`http_server_response_size_bytes_sum{method="GET",route="/ping",status="200"} 18`,
	} {
		if !strings.Contains(exposition, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if out := testenv.PromtoolCheckMetrics(t, []byte(exposition)); out != "" {
		t.Fatalf("promtool check metrics on /metrics:\n%s", out)
	}

	prom := testenv.StartPrometheus(t, []string{addr})
	const wait = 30 * time.Second
	limited := prom.WaitQuery(t, `sum(gingov_ratelimit_decisions_total{job="gingov",result="limited"})`, wait,
		func(s []testenv.PromSample) bool { return len(s) == 1 && s[0].Value > 0 })
	t.Logf("Prometheus: %v limited decisions", limited[0].Value)
	prom.WaitQuery(t, `max by (breaker) (gingov_circuitbreaker_state{breaker="GET /flaky"})`, wait,
		func(s []testenv.PromSample) bool { return len(s) == 1 && s[0].Value == 2 })
	prom.WaitQuery(t, `histogram_quantile(0.99, sum by (le) (http_server_request_duration_seconds_bucket{route="/ping"}))`, wait,
		func(s []testenv.PromSample) bool { return len(s) == 1 && s[0].Value > 0 && s[0].Value <= 10 })

	// Every query of the dashboard parses and runs, with its variables set
	// as Grafana would for "All".
	raw, err := os.ReadFile("../../dashboards/gingov.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer(`$__rate_interval`, "1m", `$job`, ".*", `$route`, ".*")
	queries := 0
	qctx, qcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer qcancel()
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			if _, err := prom.Query(qctx, vars.Replace(tg.Expr)); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
		}
	}
	if queries < 15 {
		t.Fatalf("only %d dashboard queries", queries)
	}
	// With a few scrapes in, the request-rate panel shows the service.
	prom.WaitQuery(t, vars.Replace(`sum by (route) (rate(http_server_requests_total{job=~"$job", route=~"$route"}[$__rate_interval]))`), wait,
		func(s []testenv.PromSample) bool { return len(s) > 0 })
}
