package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Prometheus is a prometheus server started for a test, listening on
// 127.0.0.1 only and scraping its targets every ScrapeInterval.
type Prometheus struct {
	*Process
	URL  string // http://127.0.0.1:port
	Port int
	Dir  string // config and TSDB
}

// PrometheusScrapeInterval is how often the test server scrapes (and
// evaluates); waits on query results should allow a few intervals.
const PrometheusScrapeInterval = time.Second

// promHTTP queries the test servers. Keep-alives are off so that no idle
// connection goroutine outlives a test (goleak).
var promHTTP = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// StartPrometheus starts Debian's prometheus on a free loopback port with
// a fresh config and data dir, scraping each target (host:port, path
// /metrics) as job "gingov" every PrometheusScrapeInterval, with exemplar
// storage on, and waits until /-/ready answers. Extra args are appended to
// the command line. The server is stopped at test cleanup.
func StartPrometheus(t testing.TB, targets []string, extra ...string) *Prometheus {
	t.Helper()
	bin := Require(t, "prometheus", "apt-get install -y prometheus")
	var quoted []string
	for _, tg := range targets {
		quoted = append(quoted, strconv.Quote(tg))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: gingov
    metrics_path: /metrics
    static_configs:
      - targets: [%[2]s]
`, PrometheusScrapeInterval, strings.Join(quoted, ", "))
	var lastErr error
	for range 3 {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		port := FreePort(t)
		p := &Prometheus{Port: port, Dir: dir, URL: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		args := append([]string{
			"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			"--enable-feature=exemplar-storage",
			"--log.level=warn",
		}, extra...)
		p.Process = Start(t, bin, args, nil, dir)
		if lastErr = p.waitReady(30 * time.Second); lastErr == nil {
			return p
		}
		p.Stop()
		if !addrInUse(p.Output()) {
			break
		}
	}
	t.Fatalf("testenv: prometheus did not start: %v", lastErr)
	return nil
}

func (p *Prometheus) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("exited: %s", p.Output())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = p.get(ctx, "/-/ready", nil)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// get GETs path, decoding a JSON answer into out when out is not nil.
func (p *Prometheus) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := promHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(body))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// PromSample is one element of an instant vector.
type PromSample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates an instant PromQL query now and returns its vector (a
// scalar answer is one sample without labels).
func (p *Prometheus) Query(ctx context.Context, promql string) ([]PromSample, error) {
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(promql), &res); err != nil {
		return nil, err
	}
	if res.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", promql, res.Error)
	}
	var samples []PromSample
	switch res.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(res.Data.Result, &vec); err != nil {
			return nil, err
		}
		for _, s := range vec {
			v, err := promValue(s.Value[1])
			if err != nil {
				return nil, err
			}
			samples = append(samples, PromSample{Labels: s.Metric, Value: v})
		}
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(res.Data.Result, &s); err != nil {
			return nil, err
		}
		v, err := promValue(s[1])
		if err != nil {
			return nil, err
		}
		samples = append(samples, PromSample{Value: v})
	default:
		return nil, fmt.Errorf("query %q: result type %q", promql, res.Data.ResultType)
	}
	return samples, nil
}

func promValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// WaitQuery evaluates promql every scrape interval until ok accepts the
// result or timeout passes (then it fails the test with the last answer),
// and returns the accepted result.
func (p *Prometheus) WaitQuery(t testing.TB, promql string, timeout time.Duration, ok func([]PromSample) bool) []PromSample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := p.Query(ctx, promql)
		cancel()
		if err == nil && ok(res) {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: prometheus: %s after %v: %v (err %v)", promql, timeout, res, err)
		}
		time.Sleep(PrometheusScrapeInterval / 2)
	}
}

// PromExemplar is one exemplar of a series.
type PromExemplar struct {
	Series map[string]string // the series' labels, __name__ included
	Labels map[string]string // the exemplar's own (e.g. trace_id)
	Value  float64
}

// Exemplars returns the exemplars of the series promql selects, over the
// last hour.
func (p *Prometheus) Exemplars(ctx context.Context, promql string) ([]PromExemplar, error) {
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels map[string]string `json:"labels"`
				Value  string            `json:"value"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	now := time.Now()
	q := url.Values{
		"query": {promql},
		"start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)},
		"end":   {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)},
	}
	if err := p.get(ctx, "/api/v1/query_exemplars?"+q.Encode(), &res); err != nil {
		return nil, err
	}
	if res.Status != "success" {
		return nil, fmt.Errorf("exemplars %q: %s", promql, res.Error)
	}
	var out []PromExemplar
	for _, s := range res.Data {
		for _, e := range s.Exemplars {
			v, err := strconv.ParseFloat(e.Value, 64)
			if err != nil {
				return nil, err
			}
			out = append(out, PromExemplar{Series: s.SeriesLabels, Labels: e.Labels, Value: v})
		}
	}
	return out, nil
}

// PromTarget is a scrape target as the server sees it.
type PromTarget struct {
	ScrapeURL string `json:"scrapeUrl"`
	Health    string `json:"health"` // "up", "down" or "unknown"
	LastError string `json:"lastError"`
}

// Targets returns the active scrape targets.
func (p *Prometheus) Targets(ctx context.Context) ([]PromTarget, error) {
	var res struct {
		Data struct {
			ActiveTargets []PromTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/targets", &res); err != nil {
		return nil, err
	}
	return res.Data.ActiveTargets, nil
}

// PromtoolCheckMetrics runs `promtool check metrics` (Debian's prometheus
// package) on an exposition in the Prometheus text format and returns what
// it reported: "" when it found nothing to complain about. Lint problems
// are reported, not fatal; a promtool that cannot run fails the test.
func PromtoolCheckMetrics(t testing.TB, exposition []byte) string {
	t.Helper()
	bin := Require(t, "promtool", "apt-get install -y prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("testenv: promtool: %v\n%s", err, out)
	}
	report := strings.TrimSpace(string(out))
	if err != nil && report == "" {
		report = err.Error()
	}
	return report
}
