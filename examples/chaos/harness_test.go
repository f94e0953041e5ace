//go:build chaos

package chaos

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gingov/gingov/internal/testenv"
)

// binaries are the programs the suite runs, built once into a temp dir.
type binaries struct{ distributed, gateway, orders, loadgen string }

// build compiles the examples and the load generator with go build, as a
// user would, into one temp dir.
func build(t *testing.T) binaries {
	t.Helper()
	dir := t.TempDir()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir, "./distributed", "./gateway", "./orders", "./chaos/loadgen")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the examples and the load generator in %v", time.Since(start).Round(100*time.Millisecond))
	return binaries{
		distributed: filepath.Join(dir, "distributed"),
		gateway:     filepath.Join(dir, "gateway"),
		orders:      filepath.Join(dir, "orders"),
		loadgen:     filepath.Join(dir, "loadgen"),
	}
}

// localAddr returns a free 127.0.0.1:port.
func localAddr(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}

// httpc is the suite's own client for readiness checks and metrics.
var httpc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// get returns the status and body of GET url.
func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitStatus waits until GET url answers 200.
func waitStatus(t *testing.T, p *testenv.Process, url string) {
	t.Helper()
	p.WaitReady(t, 30*time.Second, func(ctx context.Context) error {
		status, _, err := get(ctx, url)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("GET %s: %d", url, status)
		}
		return nil
	})
}

// metric returns the values of every sample of the named metric family
// that an instance exports on /metrics (none when it cannot be read).
func metric(base, name string) []float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	status, body, err := get(ctx, base+"/metrics")
	if err != nil || status != http.StatusOK {
		return nil
	}
	var vals []float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				vals = append(vals, v)
			}
		}
	}
	return vals
}

// allEqual reports whether every instance exports name, all at want.
func allEqual(bases []string, name string, want float64) bool {
	for _, b := range bases {
		vals := metric(b, name)
		if len(vals) == 0 {
			return false
		}
		for _, v := range vals {
			if v != want {
				return false
			}
		}
	}
	return true
}

// waitUntil polls cond every 25 ms from now until it holds or timeout
// passes, and returns how long it took (or -1 on timeout).
func waitUntil(timeout time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return -1
}

// otlpReceiver is an OTLP/HTTP trace receiver that counts the spans it
// gets per service.name.
type otlpReceiver struct {
	Addr  string
	mu    sync.Mutex
	spans map[string]int
}

func startOTLP(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{spans: map[string]int{}}
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans[svc] += len(ss.GetSpans())
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans returns how many spans service has sent so far.
func (r *otlpReceiver) Spans(service string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spans[service]
}

// rec is one request as the load generator saw it.
type rec struct {
	start    time.Time
	latency  time.Duration
	target   int
	status   int // 0: no answer (err says why)
	envelope bool
	reason   string
	err      string
}

// load is a running load generator.
type load struct {
	p   *testenv.Process
	out string
	T0  time.Time // when it sends its first request
}

// startLoad runs the load generator: rate requests per second in all,
// round robin over targets, from T0 (half a second from now) until Stop.
func startLoad(t *testing.T, bin string, targets []string, rate float64, users int) *load {
	t.Helper()
	out := filepath.Join(t.TempDir(), "load.csv")
	t0 := time.Now().Add(500 * time.Millisecond)
	args := []string{
		"-targets", strings.Join(targets, ","), "-rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"-duration", "2m", "-start", strconv.FormatInt(t0.UnixNano(), 10),
		"-users", strconv.Itoa(users), "-timeout", "3s", "-out", out,
	}
	return &load{p: testenv.Start(t, bin, args, nil, ""), out: out, T0: t0}
}

// Stop ends the load (SIGTERM: it stops sending, waits for the answers in
// flight and writes them) and returns every request, sorted by start.
func (l *load) Stop(t *testing.T) []rec {
	t.Helper()
	l.p.Stop()
	f, err := os.Open(l.out)
	if err != nil {
		t.Fatalf("the load generator wrote no results: %v\n%s", err, l.p.Output())
	}
	defer f.Close()
	var recs []rec
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ",")
		if len(fs) != 7 {
			t.Fatalf("bad load line %q", sc.Text())
		}
		start, _ := strconv.ParseInt(fs[0], 10, 64)
		lat, _ := strconv.ParseInt(fs[1], 10, 64)
		target, _ := strconv.Atoi(fs[2])
		status, _ := strconv.Atoi(fs[3])
		recs = append(recs, rec{
			start: time.Unix(0, start), latency: time.Duration(lat), target: target, status: status,
			envelope: fs[4] == "1", reason: fs[5], err: fs[6],
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(recs, func(a, b rec) int { return a.start.Compare(b.start) })
	return recs
}

// stats summarises the requests sent in one window.
type stats struct {
	from, to    time.Time
	n           int
	ok          int            // 200
	nonEnvelope int            // an error status (>= 400) whose body is not a gingov envelope
	kit5xx      int            // an envelope 5xx that the fault does not explain
	kitReasons  map[string]int // kit5xx by status and reason
	policy      map[string]int // documented answers ("429 RATE_LIMITED", "504 TIMEOUT", ...)
	other       int            // any other status
	client      map[string]int // no answer, by reason (refused, reset, eof, timeout, skipped, other)
	p99, max    time.Duration  // of the answered requests
	firstBad    time.Time      // start of the first request not answered 200
	lastBad     time.Time      // start of the last one
	ideal       float64        // what should have been admitted (0: every request)
}

// policyFunc says whether a non-200 answer is one the fault's documented
// policy gives (status and envelope reason).
type policyFunc func(status int, reason string) bool

func summarise(recs []rec, from, to time.Time, allowed policyFunc) stats {
	s := stats{from: from, to: to, policy: map[string]int{}, client: map[string]int{}, kitReasons: map[string]int{}}
	var lat []time.Duration
	for _, r := range recs {
		if r.start.Before(from) || !r.start.Before(to) {
			continue
		}
		s.n++
		if r.status != http.StatusOK {
			if s.firstBad.IsZero() {
				s.firstBad = r.start
			}
			s.lastBad = r.start
		}
		switch {
		case r.status == 0:
			s.client[r.err]++
			continue
		case r.status == http.StatusOK:
			s.ok++
		case !r.envelope:
			s.nonEnvelope++
		case allowed != nil && allowed(r.status, r.reason):
			s.policy[strconv.Itoa(r.status)+" "+r.reason]++
		case r.status >= 500:
			s.kit5xx++
			s.kitReasons[strconv.Itoa(r.status)+" "+r.reason]++
		default:
			s.other++
		}
		lat = append(lat, r.latency)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.max = lat[len(lat)-1]
	}
	return s
}

func (s stats) clientErrors() int {
	n := 0
	for _, c := range s.client {
		n += c
	}
	return n
}

func (s stats) policyAnswers() int {
	n := 0
	for _, c := range s.policy {
		n += c
	}
	return n
}

// admitted returns "admitted / ideal (ratio)"; without an ideal the ideal
// is every request.
func (s stats) admitted() string {
	ideal := s.ideal
	if ideal == 0 {
		ideal = float64(s.n)
	}
	if ideal == 0 {
		return "—"
	}
	return fmt.Sprintf("%d / %.0f (%.3f)", s.ok, ideal, float64(s.ok)/ideal)
}

func (s stats) ratio() float64 { return float64(s.ok) / s.ideal }

func (s stats) String() string {
	return fmt.Sprintf("%s  %d requests, p99 %v, max %v, non-envelope %d, kit 5xx %d %v, policy %v, other %d, no answer %v",
		s.admitted(), s.n, ms(s.p99), ms(s.max), s.nonEnvelope, s.kit5xx, s.kitReasons, s.policy, s.other, s.client)
}

// ms rounds d for the table.
func ms(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < 10*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// row is one line of the suite's table.
type row struct {
	fault                  string
	healthy, during, after stats
	run                    string // the Done-when figure: healthy + during together
	lost                   string // requests lost at SIGTERM
	reregister, recover    string
	spans                  string
}

// table collects the rows of the whole suite, in order.
type table struct {
	mu   sync.Mutex
	rows []row
}

func (tb *table) add(r row) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.rows = append(tb.rows, r)
}

func (tb *table) markdown() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var b strings.Builder
	b.WriteString("| fault | admitted / ideal: healthy | during | after | healthy + during | p99 / max during | non-envelope | kit 5xx | policy answers: during / after | no answer (client side) | lost at SIGTERM | re-register | recover | spans |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range tb.rows {
		nonEnv := r.healthy.nonEnvelope + r.during.nonEnvelope + r.after.nonEnvelope
		kit := r.healthy.kit5xx + r.during.kit5xx + r.after.kit5xx
		client := r.healthy.clientErrors() + r.during.clientErrors() + r.after.clientErrors()
		clientText := strconv.Itoa(client)
		if client > 0 {
			clientText += " " + classes(r.healthy.client, r.during.client, r.after.client)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s / %s | %d | %d | %s | %s | %s | %s | %s | %s |\n",
			r.fault, r.healthy.admitted(), r.during.admitted(), r.after.admitted(), dash(r.run),
			ms(r.during.p99), ms(r.during.max), nonEnv, kit, policyText(r.during.policy)+" / "+policyText(r.after.policy), clientText,
			dash(r.lost), dash(r.reregister), dash(r.recover), dash(r.spans))
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func classes(ms ...map[string]int) string {
	sum := map[string]int{}
	for _, m := range ms {
		for k, v := range m {
			sum[k] += v
		}
	}
	var parts []string
	for _, k := range slices.Sorted(mapKeys(sum)) {
		parts = append(parts, fmt.Sprintf("%d %s", sum[k], k))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func policyText(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(mapKeys(m)) {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// sleepUntil sleeps until at.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// logTimeline logs the timeline of recs from t0 when the test has failed.
func logTimeline(t *testing.T, recs []rec, t0 time.Time) {
	t.Helper()
	if t.Failed() && len(recs) > 0 {
		timeline(t, recs, t0, recs[len(recs)-1].start)
	}
}

// timeline logs, per 500 ms from..to, what the requests sent then got, to
// see when a fault started and ended costing requests.
func timeline(t *testing.T, recs []rec, from, to time.Time) {
	t.Helper()
	var b strings.Builder
	for at := from; at.Before(to); at = at.Add(500 * time.Millisecond) {
		counts := map[string]int{}
		var maxLat time.Duration
		for _, r := range recs {
			if r.start.Before(at) || !r.start.Before(at.Add(500*time.Millisecond)) {
				continue
			}
			k := strconv.Itoa(r.status)
			if r.status == 0 {
				k = r.err
			} else if r.reason != "" {
				k += " " + r.reason
			}
			counts[k]++
			maxLat = max(maxLat, r.latency)
		}
		fmt.Fprintf(&b, "\n  +%5.1fs %v max %v", at.Sub(from).Seconds(), counts, ms(maxLat))
	}
	t.Logf("timeline:%s", b.String())
}
