package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
)

// The fleet outage run: four processes of this example, each its own OS
// process started from the test binary, share one Redis with one rule,
// {by: ip, limit: 200, period: 1s, burst: 200}, failure policy local and no
// registry. The test sends HTTP load at all four from loopback, kills
// Redis (by the PID of the server it started) 2 s into a 6 s run, then
// restarts it and keeps the load on for 3 s more.
//
// The ideal of a window is what one exact token bucket admits under load
// that keeps it empty: burst + limit × the window's length when the window
// starts with a full bucket (the run, and the window after the restart,
// whose fresh Redis holds no bucket), limit × length when it continues one
// (the outage). Requests count in the window in which they were sent.
const (
	fleetProcs     = 4
	fleetLimit     = 200 // per second
	fleetBurst     = 200
	fleetHealthy   = 2 * time.Second
	fleetOutage    = 4 * time.Second // the run is healthy + outage = 6 s
	fleetAfter     = 3 * time.Second
	fleetWorkers   = 4                     // per process
	fleetPace      = 10 * time.Millisecond // per worker: at most 1600 requests/s in all, 8 × the limit
	fleetMaxRatio  = 1.15                  // the run's admitted / ideal
	fleetEnvConfig = "DISTRIBUTED_FLEET_CONFIG"
	fleetEnvAddr   = "DISTRIBUTED_FLEET_ADDR"
)

// fleetChild runs one instance of the example when the test binary was
// started as one (by startFleet): it serves until SIGTERM. It reports
// whether it ran.
func fleetChild() bool {
	cfg, addr := os.Getenv(fleetEnvConfig), os.Getenv(fleetEnvAddr)
	if cfg == "" {
		return false
	}
	ctx, stop := registry.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, options{config: cfg, addr: addr, drain: 50 * time.Millisecond}, io.Discard, nil); err != nil {
		fmt.Fprintln(os.Stderr, "distributed:", err)
		os.Exit(1)
	}
	return true
}

// fleetConfig is the example's configuration for the run: the one rule,
// the local policy, no registry, no tracing exporter.
func fleetConfig(t *testing.T, addrs []string) string {
	t.Helper()
	doc := fmt.Sprintf(`service: {name: orders, version: v1.0.0}
log: {level: warn}
ratelimit:
  redis:
    addrs: [%s]
    failure_policy: local
  rules:
    - {by: ip, limit: %d, period: 1s, burst: %d}
`, strings.Join(addrs, ", "), fleetLimit, fleetBurst)
	path := filepath.Join(t.TempDir(), "gingov.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startFleet starts the processes and returns their base URLs. Each is
// stopped by its PID (SIGTERM, then SIGKILL) at cleanup, and dies with the
// test binary.
func startFleet(t *testing.T, cfg string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var bases []string
	for range fleetProcs {
		addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		p := testenv.Start(t, exe, []string{"-test.run=^$"}, []string{fleetEnvConfig + "=" + cfg, fleetEnvAddr + "=" + addr}, t.TempDir())
		base := "http://" + addr
		p.WaitReady(t, 30*time.Second, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		t.Logf("instance pid %d on %s", p.Pid(), addr)
		bases = append(bases, base)
	}
	return bases
}

// fleetInstances scrapes the rule's fleet size from an instance's metrics
// (gingov_ratelimit_instances), 0 when it has none yet.
func fleetInstances(client *http.Client, base string) int {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "gingov_ratelimit_instances{") {
			n, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return int(n)
		}
	}
	return 0
}

// waitFleetSize sends a few requests to every instance until each exports
// a fleet size of fleetProcs, then lets the shared bucket fill up again.
func waitFleetSize(t *testing.T, client *http.Client, bases []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, b := range bases {
			if resp, err := client.Get(b + "/ping"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			ok = ok && fleetInstances(client, b) == fleetProcs
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			var got []int
			for _, b := range bases {
				got = append(got, fleetInstances(client, b))
			}
			t.Fatalf("fleet sizes exported %v, want %d each", got, fleetProcs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the few requests above refill in 0.2 s at most
}

// fleetCall is one request as the load generator saw it.
type fleetCall struct {
	start   time.Time
	latency time.Duration
	status  int // 0: a transport error
}

// fleetLoad drives every base URL from fleetWorkers workers each until
// stop is closed, and returns every call sorted by start.
func fleetLoad(client *http.Client, bases []string, stop <-chan struct{}) func() []fleetCall {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		calls []fleetCall
	)
	for _, b := range bases {
		for range fleetWorkers {
			wg.Go(func() {
				var mine []fleetCall
				for i := 0; i < 100_000; i++ { // a bound besides stop
					select {
					case <-stop:
						mu.Lock()
						calls = append(calls, mine...)
						mu.Unlock()
						return
					default:
					}
					c := fleetCall{start: time.Now()}
					if resp, err := client.Get(b + "/ping"); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						c.status = resp.StatusCode
					}
					c.latency = time.Since(c.start)
					mine = append(mine, c)
					time.Sleep(fleetPace - min(c.latency, fleetPace))
				}
				mu.Lock()
				calls = append(calls, mine...)
				mu.Unlock()
			})
		}
	}
	return func() []fleetCall {
		wg.Wait()
		slices.SortFunc(calls, func(a, b fleetCall) int { return a.start.Compare(b.start) })
		return calls
	}
}

// window summarises the calls sent in [from, to).
type window struct {
	name        string
	calls       int
	admitted    int
	other       int // neither 200 nor 429: must be none
	ideal       float64
	p99, maxLat time.Duration
	from, to    time.Time
}

func summarise(calls []fleetCall, name string, from, to time.Time, fullBucket bool) window {
	w := window{name: name, from: from, to: to}
	var lat []time.Duration
	for _, c := range calls {
		if c.start.Before(from) || !c.start.Before(to) {
			continue
		}
		w.calls++
		lat = append(lat, c.latency)
		switch c.status {
		case http.StatusOK:
			w.admitted++
		case http.StatusTooManyRequests:
		default:
			w.other++
		}
	}
	w.ideal = fleetLimit * to.Sub(from).Seconds()
	if fullBucket {
		w.ideal += fleetBurst
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		w.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		w.maxLat = lat[len(lat)-1]
	}
	return w
}

func (w window) ratio() float64 { return float64(w.admitted) / w.ideal }

func (w window) String() string {
	return fmt.Sprintf("%-34s admitted %5d / ideal %6.0f = %.4f   %5d requests, p99 %v, max %v, other statuses %d",
		w.name, w.admitted, w.ideal, w.ratio(), w.calls, w.p99.Round(10*time.Microsecond), w.maxLat.Round(10*time.Microsecond), w.other)
}

// The fleet outage run, against a standalone Redis and against a 3-master
// Redis Cluster with the master of the rule's bucket killed: with no
// registry, the four processes learn their number through Redis, so that
// the outage costs at most one more burst, not four times the rate.
func TestFleetOutageFourProcesses(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		fleetOutageRun(t, []string{srv.Addr}, srv)
	})
	t.Run("cluster", func(t *testing.T) {
		c := testenv.StartRedisCluster(t, 3)
		victim := c.MasterOf(t, "gingov:rl:{ip:127.0.0.1}")
		t.Logf("the bucket's master: %s (pid %d)", c.Nodes[victim].Addr, c.Nodes[victim].Pid())
		fleetOutageRun(t, c.Addr(), c.Nodes[victim])
	})
}

func fleetOutageRun(t *testing.T, addrs []string, victim *testenv.Redis) {
	bases := startFleet(t, fleetConfig(t, addrs))
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: fleetWorkers + 2, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	waitFleetSize(t, client, bases)

	stop := make(chan struct{})
	t0 := time.Now()
	wait := fleetLoad(client, bases, stop)
	time.Sleep(time.Until(t0.Add(fleetHealthy)))
	victim.Kill() // SIGKILL by the PID the test started
	killed := time.Now()
	time.Sleep(time.Until(t0.Add(fleetHealthy + fleetOutage)))
	runEnd := time.Now()
	victim.Restart(t) // returns once the server answers PING
	restarted := time.Now()
	time.Sleep(fleetAfter)
	close(stop)
	calls := wait()
	afterEnd := restarted.Add(fleetAfter)

	run := summarise(calls, "run (healthy 2 s + outage 4 s)", t0, t0.Add(fleetHealthy+fleetOutage), true)
	ws := []window{
		summarise(calls, "healthy, 2 s", t0, t0.Add(fleetHealthy), true),
		summarise(calls, "during the outage, 4 s", t0.Add(fleetHealthy), t0.Add(fleetHealthy+fleetOutage), false),
		run,
		summarise(calls, fmt.Sprintf("after the restart, %v", fleetAfter), restarted, afterEnd, true),
	}
	t.Logf("kill %v after t0, run ended %v after t0, Redis answered again %v later; %d requests in all",
		killed.Sub(t0).Round(time.Millisecond), runEnd.Sub(t0).Round(time.Millisecond), restarted.Sub(runEnd).Round(time.Millisecond), len(calls))
	for _, w := range ws {
		t.Log(w)
	}

	// The load is well above the limit in every window, or the ratios
	// would say nothing.
	for _, w := range ws {
		if float64(w.calls) < 2*w.ideal {
			t.Errorf("%s: only %d requests for an ideal of %.0f; the load was not well above the limit", w.name, w.calls, w.ideal)
		}
		if w.other != 0 {
			t.Errorf("%s: %d answers neither 200 nor 429", w.name, w.other)
		}
	}
	if r := run.ratio(); r > fleetMaxRatio {
		t.Errorf("the run admitted %d, %.4f × the ideal %.0f; want at most %.2f×", run.admitted, r, run.ideal, fleetMaxRatio)
	}
	// The documented bound: the Redis bucket's ideal, plus each of the N
	// local buckets' burst/N, plus a request or two per process in flight
	// at the kill.
	if bound := run.ideal + fleetBurst + 2*fleetProcs; float64(run.admitted) > bound {
		t.Errorf("the run admitted %d > the bound %.0f (ideal + one burst)", run.admitted, bound)
	}
	if h := ws[0]; h.ratio() < 0.9 || h.ratio() > 1.02 {
		t.Errorf("healthy: admitted %d of an ideal %.0f, want within [0.90, 1.02]", h.admitted, h.ideal)
	}
	if a := ws[3]; a.ratio() > fleetMaxRatio {
		t.Errorf("after the restart: admitted %d, %.4f × the ideal %.0f", a.admitted, a.ratio(), a.ideal)
	}
}
