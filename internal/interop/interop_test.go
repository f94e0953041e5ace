package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	kerrors "github.com/go-kratos/kratos/v2/errors"
	klog "github.com/go-kratos/kratos/v2/log"
	kregistry "github.com/go-kratos/kratos/v2/registry"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gingov/gingov/errcode"
	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/metrics"
	"github.com/gingov/gingov/registry"
)

// sdkDir holds the Nacos SDK's log and cache (set by TestMain).
var sdkDir string

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	// Kratos logs through its global logger (resolver warnings, server
	// start); keep it out of the test output unless asked for.
	klog.SetLogger(klog.NewStdLogger(io.Discard))
	testenv.MainWithDir(m, func(dir string) error {
		sdkDir = dir
		return nil
	}, testenv.NacosLeftovers()...)
}

// quiet is the logger of the gingov side.
var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// errOrderNotFound is the gingov service's application error.
var errOrderNotFound = errcode.MustNew(7001001, http.StatusNotFound, "ORDER_NOT_FOUND", "order not found")

// order is the gingov service's answer.
type order struct {
	ID       string `json:"id"`
	Instance string `json:"instance"`
}

// gingovService is a Gin engine with gingov's chain (recovery, request
// ID, RED metrics, access log, the error envelope) answering
// GET /orders/:id with the order and the instance that served it, and
// GET /orders/missing with errOrderNotFound.
func gingovService(t *testing.T, instanceID string) http.Handler {
	t.Helper()
	m, err := metrics.NewHTTP(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rid, err := logging.NewRequestID()
	if err != nil {
		t.Fatal(err)
	}
	al, err := logging.NewAccessLog(quiet)
	if err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.Use(logging.Recovery(quiet), rid.Middleware(), m.Middleware(), al.Middleware())
	errcode.Handle(r)
	r.GET("/orders/:id", errcode.Handler(func(c *gin.Context) error {
		if c.Param("id") == "missing" {
			return errOrderNotFound.WithMetadata("order_id", "missing")
		}
		c.JSON(http.StatusOK, order{ID: c.Param("id"), Instance: instanceID})
		return nil
	}))
	return r
}

// fastDrain keeps the stop of a Server short where no client is left to
// drain.
var fastDrain = registry.WithDrainDelay(50 * time.Millisecond)

// gingovServer is a gingov service run by registry.Server.
type gingovServer struct {
	*registry.Server
	start time.Time // when Run was called
	stop  func()    // ends Run and waits for it (also at test cleanup)
}

// serveGingov runs the gingov service through registry.NewServer with reg
// on a free loopback port until stop or the end of the test. The Server
// keeps its default drain delay unless opts say otherwise.
func serveGingov(t *testing.T, reg registry.Registrar, ins registry.ServiceInstance, opts ...registry.ServerOption) *gingovServer {
	t.Helper()
	s, err := registry.NewServer(gingovService(t, ins.ID), "127.0.0.1:0", reg, ins,
		append([]registry.ServerOption{registry.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Server.Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Server.Run did not return 20 s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return &gingovServer{Server: s, start: start, stop: stop}
}

// kratosClient is a Kratos HTTP client for discovery:///name through
// disc, closed (its watch stopped, its connections closed) when the test
// ends.
func kratosClient(t *testing.T, disc kregistry.Discovery, name string) *khttp.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	cli, err := khttp.NewClient(ctx,
		khttp.WithEndpoint("discovery:///"+name),
		khttp.WithDiscovery(disc),
		khttp.WithTransport(tr),
		khttp.WithTimeout(5*time.Second))
	if err != nil {
		cancel()
		t.Fatalf("kratos NewClient: %v", err)
	}
	t.Cleanup(func() {
		if err := cli.Close(); err != nil {
			t.Errorf("kratos client Close: %v", err)
		}
		cancel()
		tr.CloseIdleConnections()
	})
	return cli
}

// firstCall calls GET /orders/42 through cli until it is answered (the
// Kratos client has no node until its discovery has delivered one), for
// at most timeout, and returns the answer and how long after since it
// came.
func firstCall(t *testing.T, cli *khttp.Client, since time.Time, timeout time.Duration) (order, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		var out order
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := cli.Invoke(ctx, http.MethodGet, "/orders/42", nil, &out)
		cancel()
		if err == nil {
			return out, time.Since(since)
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the Kratos client got no answer within %v: last error %v", timeout, lastErr)
	return order{}, 0
}

// checkEnvelope calls GET /orders/missing through cli and checks that
// Kratos's default error decoder reads gingov's error envelope: the HTTP
// status as the code, and gingov's reason, message and metadata.
func checkEnvelope(t *testing.T, cli *khttp.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out order
	err := cli.Invoke(ctx, http.MethodGet, "/orders/missing", nil, &out)
	var ke *kerrors.Error
	if !errors.As(err, &ke) {
		t.Fatalf("GET /orders/missing: %v (%T); want a Kratos *errors.Error", err, err)
	}
	if ke.Code != http.StatusNotFound || ke.Reason != "ORDER_NOT_FOUND" || ke.Message != "order not found" ||
		ke.Metadata["order_id"] != "missing" {
		t.Fatalf("GET /orders/missing: Kratos read code %d reason %q message %q metadata %v; want 404 ORDER_NOT_FOUND, gingov's message and metadata",
			ke.Code, ke.Reason, ke.Message, ke.Metadata)
	}
}

// latency is what measureCalls found.
type latency struct{ p50, p99, max time.Duration }

func (l latency) String() string {
	return fmt.Sprintf("p50 %v, p99 %v, max %v", l.p50, l.p99, l.max)
}

// measureCalls makes n sequential calls of GET /orders/42 with call and
// returns their latency distribution; every call must succeed.
func measureCalls(t *testing.T, n int, call func(context.Context) error) latency {
	t.Helper()
	d := make([]time.Duration, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err := call(ctx)
		d = append(d, time.Since(start))
		cancel()
		if err != nil {
			t.Fatalf("call %d of %d: %v", i+1, n, err)
		}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))].Round(time.Microsecond) }
	return latency{p50: q(0.50), p99: q(0.99), max: d[len(d)-1].Round(time.Microsecond)}
}

// callsKratos measures calls through the Kratos client.
func callsKratos(cli *khttp.Client, instance string) func(context.Context) error {
	return func(ctx context.Context) error {
		var out order
		if err := cli.Invoke(ctx, http.MethodGet, "/orders/42", nil, &out); err != nil {
			return err
		}
		if out.ID != "42" || out.Instance != instance {
			return fmt.Errorf("answer %+v; want order 42 from %s", out, instance)
		}
		return nil
	}
}

// callsDirect measures plain net/http calls to addr, the baseline.
func callsDirect(t *testing.T, addr string) func(context.Context) error {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	return func(ctx context.Context) error {
		return getJSON(ctx, c, "http://"+addr+"/orders/42", &order{})
	}
}

// getJSON gets url with c and decodes a 200 answer into out.
func getJSON(ctx context.Context, c *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// kratosCallsGingov is the common part of the Kratos-client tests: the
// Kratos client for name through disc gets the gingov service's answer,
// reads its error envelope, and its call latency is measured against
// direct calls.
func kratosCallsGingov(t *testing.T, backend string, disc kregistry.Discovery, name string, s *gingovServer) {
	t.Helper()
	id := s.Instance().ID
	cli := kratosClient(t, disc, name)
	got, took := firstCall(t, cli, s.start, 20*time.Second)
	if got.ID != "42" || got.Instance != id {
		t.Fatalf("the Kratos client got %+v; want order 42 from %s", got, id)
	}
	t.Logf("gingov Server start → first answer to the Kratos client: %v", took.Round(time.Millisecond))
	checkEnvelope(t, cli)

	const n = 300
	_ = callsKratos(cli, id)(context.Background()) // warm the connection
	viaKratos := measureCalls(t, n, callsKratos(cli, id))
	direct := measureCalls(t, n, callsDirect(t, s.Instance().Address))
	t.Logf("%d sequential calls, Kratos client with %s discovery (discovery:///%s): %v; plain net/http to the same address: %v",
		n, backend, name, viaKratos, direct)
}

// kratosFollowsDeregistration: two gingov instances of name registered
// with reg serve a Kratos client (discovery through disc); when one of
// them stops, with the Server's default drain delay, the Kratos client
// loses no call: the deregistration reaches it before the instance stops
// serving, and every later call goes to the other one.
func kratosFollowsDeregistration(t *testing.T, disc kregistry.Discovery, reg registry.Registrar, name string) {
	t.Helper()
	s1 := serveGingov(t, reg, registry.ServiceInstance{ID: name + "-1", Name: name, Version: "v1"})
	s2 := serveGingov(t, reg, registry.ServiceInstance{ID: name + "-2", Name: name, Version: "v1"})
	cli := kratosClient(t, disc, name)

	call := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var out order
		err := cli.Invoke(ctx, http.MethodGet, "/orders/42", nil, &out)
		return out.Instance, err
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for !seen[s1.Instance().ID] || !seen[s2.Instance().ID] {
		if time.Now().After(deadline) {
			t.Fatalf("the Kratos client reached %v within 20 s; want both instances", seen)
		}
		if id, err := call(); err == nil {
			seen[id] = true
		}
		time.Sleep(5 * time.Millisecond)
	}

	stopped := make(chan struct{})
	stopAt := time.Now()
	go func() { s2.stop(); close(stopped) }()
	var calls, failed int
	var lastFromS2 time.Duration
	var firstErr error
	for after := -1; after != 0; {
		select {
		case <-stopped:
			if after < 0 {
				after = 50 // calls after the Server stopped
			}
		default:
		}
		id, err := call()
		calls++
		switch {
		case err != nil:
			failed++
			if firstErr == nil {
				firstErr = err
			}
		case id == s2.Instance().ID:
			lastFromS2 = time.Since(stopAt)
		}
		if after > 0 {
			after--
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%s-2 stopping (default drain delay %v): last answer from it %v after, Run returned %v after; %d calls, %d failed",
		name, registry.DefaultDrainDelay, lastFromS2.Round(time.Millisecond), time.Since(stopAt).Round(time.Millisecond), calls, failed)
	if failed > 0 {
		t.Fatalf("%d of %d Kratos calls failed while an instance left (first: %v); want none", failed, calls, firstErr)
	}
}
