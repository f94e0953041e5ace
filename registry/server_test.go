package registry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/logging"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/registrytest"
)

// recorder collects a server's events.
type recorder struct {
	mu     sync.Mutex
	events []registry.Event
	seen   chan registry.EventKind
}

func newRecorder() *recorder { return &recorder{seen: make(chan registry.EventKind, 100)} }

func (r *recorder) on(_ context.Context, e registry.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.seen <- e.Kind
}

func (r *recorder) kinds() []registry.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []registry.EventKind
	for _, e := range r.events {
		out = append(out, e.Kind)
	}
	return out
}

// wait waits for an event of kind k.
func (r *recorder) wait(t *testing.T, k registry.EventKind) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-r.seen:
			if got == k {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event within 10 s; events %v", k, r.kinds())
		}
	}
}

// client is an HTTP client without idle connections (goleak).
func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// run starts s.Run in the background; the returned function cancels it
// and returns Run's error (bounded).
func run(t *testing.T, s *registry.Server) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-ch:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return within 20 s of the cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ch
}

// The whole life of an instance: listen before register; register; on
// cancel readiness turns 503 before deregistration; new requests are still
// served during the drain delay; an in-flight request completes; Run
// returns nil and the port is closed.
func TestServerLifecycle(t *testing.T) {
	c := client(t)
	reg := registrytest.New()
	var logs testenv.Buffer
	rec := newRecorder()

	var mu sync.Mutex
	var steps []string
	step := func(s string) { mu.Lock(); steps = append(steps, s); mu.Unlock() }

	reg.SetRegisterHook(func(ctx context.Context, ins *registry.ServiceInstance) error {
		// The server answers before it registers.
		if code, _ := get(t, c, "http://"+ins.Address+"/ping"); code != 200 {
			t.Errorf("at Register, /ping answered %d", code)
		}
		step("register")
		return nil
	})
	reg.SetDeregisterHook(func(ctx context.Context, ins *registry.ServiceInstance) error {
		code, body := get(t, c, "http://"+ins.Address+"/readyz")
		if code != 503 || !strings.Contains(body, `"status":"draining"`) {
			t.Errorf("at Deregister, /readyz = %d %s; want 503 draining", code, body)
		}
		step("deregister")
		return nil
	})

	slowStarted, releaseSlow := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		close(slowStarted)
		<-releaseSlow
		_, _ = io.WriteString(w, "done")
	})

	s, err := registry.NewServer(mux, "127.0.0.1:0", reg, registry.ServiceInstance{Name: "orders", Version: "v1"},
		registry.WithDrainDelay(400*time.Millisecond), registry.WithOnEvent(rec.on),
		registry.WithLogger(logging.New(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := run(t, s)
	rec.wait(t, registry.Registered)

	ins := s.Instance()
	if ins.Address != s.Addr() || !strings.HasPrefix(ins.Address, "127.0.0.1:") {
		t.Fatalf("instance address %q, listener %q", ins.Address, s.Addr())
	}
	set, _ := reg.GetService(t.Context(), "orders")
	if len(set) != 1 || set[0].Address != ins.Address || set[0].Version != "v1" {
		t.Fatalf("registry holds %+v", set)
	}
	if code, body := get(t, c, "http://"+ins.Address+"/readyz"); code != 200 ||
		body != `{"status":"ready","registration":{"memory":"registered"}}`+"\n" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if code, body := get(t, c, "http://"+ins.Address+"/healthz"); code != 200 || body != `{"status":"ok"}`+"\n" {
		t.Fatalf("/healthz = %d %s", code, body)
	}

	slow := make(chan string, 1)
	go func() {
		resp, err := c.Get("http://" + ins.Address + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- resp.Status + " " + string(b)
	}()
	<-slowStarted

	stopped := make(chan error, 1)
	cancelAt := time.Now()
	go func() { stopped <- stop() }()
	// Deregistered at once; then the drain delay, during which requests
	// are still served.
	rec.wait(t, registry.Deregistered)
	if code, _ := get(t, c, "http://"+ins.Address+"/ping"); code != 200 {
		t.Fatalf("/ping during the drain delay answered %d", code)
	}
	if set, _ := reg.GetService(t.Context(), "orders"); len(set) != 0 {
		t.Fatalf("registry still holds %+v", set)
	}
	time.Sleep(500 * time.Millisecond) // past the drain delay: Shutdown waits for /slow
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with a request in flight", err)
	default:
	}
	close(releaseSlow)
	if got := <-slow; got != "200 OK done" {
		t.Fatalf("in-flight request ended with %q", got)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if took := time.Since(cancelAt); took < 400*time.Millisecond {
		t.Fatalf("Run returned %s after the cancel, before the drain delay", took)
	}
	if _, err := c.Get("http://" + ins.Address + "/ping"); err == nil {
		t.Fatal("the port still answers after Run returned")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(steps, ",") != "register,deregister" {
		t.Fatalf("steps %v", steps)
	}
	if got := rec.kinds(); len(got) != 2 || got[0] != registry.Registered || got[1] != registry.Deregistered {
		t.Fatalf("events %v", got)
	}
	for _, msg := range []string{`"msg":"registry: registered"`, `"msg":"registry: draining"`, `"msg":"registry: deregistered"`, `"instance_id":"orders-127.0.0.1-`, `"backend":"memory"`} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("log lacks %s:\n%s", msg, logs.String())
		}
	}
}

// While the registry is unreachable the instance serves traffic and retries
// with backoff; once the registry is back the instance gets registered.
func TestServerRegisterRetry(t *testing.T) {
	c := client(t)
	reg := registrytest.New()
	rec := newRecorder()
	var up sync.Mutex
	down := true
	reg.SetRegisterHook(func(context.Context, *registry.ServiceInstance) error {
		up.Lock()
		defer up.Unlock()
		if down {
			return errors.New("connection refused")
		}
		return nil
	})
	s, err := registry.NewServer(http.NotFoundHandler(), "127.0.0.1:0", reg, registry.ServiceInstance{Name: "orders"},
		registry.WithRegisterRetry(20*time.Millisecond, 80*time.Millisecond), registry.WithDrainDelay(0),
		registry.WithOnEvent(rec.on), registry.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := run(t, s)
	for range 3 {
		rec.wait(t, registry.RegisterFailed)
	}
	addr := s.Instance().Address
	if code, body := get(t, c, "http://"+addr+"/readyz"); code != 200 || !strings.Contains(body, `"memory":"pending"`) {
		t.Fatalf("/readyz while unregistered = %d %s", code, body)
	}
	if code, _ := get(t, c, "http://"+addr+"/anything"); code != 404 {
		t.Fatalf("handler answered %d while unregistered", code)
	}
	up.Lock()
	down = false
	up.Unlock()
	rec.wait(t, registry.Registered)
	if code, body := get(t, c, "http://"+addr+"/readyz"); code != 200 || !strings.Contains(body, `"memory":"registered"`) {
		t.Fatalf("/readyz once registered = %d %s", code, body)
	}
	// Backoff: attempts spaced by at least half of the growing wait.
	calls := reg.Calls()
	for i := 2; i < len(calls) && calls[i].Op == "register"; i++ {
		if gap := calls[i].At.Sub(calls[i-1].At); gap < 10*time.Millisecond {
			t.Fatalf("attempts %d and %d only %s apart", i-1, i, gap)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if set, _ := reg.GetService(t.Context(), "orders"); len(set) != 0 {
		t.Fatalf("still registered: %v", set)
	}
}

// named gives a registrytest.Registry another backend name.
type named struct {
	*registrytest.Registry
	name string
}

func (n named) Backend() string { return n.name }

// A deregistration that hangs, or fails, is reported and does not hold
// the shutdown beyond the deregister timeout; the other registrar is still
// deregistered.
func TestServerDeregisterFailureDoesNotBlock(t *testing.T) {
	hanging, failing, fine := registrytest.New(), registrytest.New(), registrytest.New()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hanging.SetDeregisterHook(func(context.Context, *registry.ServiceInstance) error {
		<-release // ignores its context
		return nil
	})
	failing.SetDeregisterHook(func(context.Context, *registry.ServiceInstance) error { return errors.New("503 from registry") })
	rec := newRecorder()
	s, err := registry.NewServer(http.NotFoundHandler(), "127.0.0.1:0", named{hanging, "hanging"},
		registry.ServiceInstance{Name: "orders"},
		registry.WithRegistrar(named{failing, "failing"}), registry.WithRegistrar(fine),
		registry.WithDeregisterTimeout(200*time.Millisecond), registry.WithDrainDelay(0),
		registry.WithOnEvent(rec.on), registry.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := run(t, s)
	for range 3 {
		rec.wait(t, registry.Registered)
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %s with a hanging deregistration (timeout 200ms)", took)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := map[string]registry.Event{}
	for _, e := range rec.events {
		if e.Kind == registry.Deregistered || e.Kind == registry.DeregisterFailed {
			got[e.Backend] = e
		}
	}
	if e := got["hanging"]; e.Kind != registry.DeregisterFailed || !errors.Is(e.Err, context.DeadlineExceeded) {
		t.Errorf("hanging: %v %v", e.Kind, e.Err)
	}
	if e := got["failing"]; e.Kind != registry.DeregisterFailed || e.Err == nil || e.Instance.Name != "orders" {
		t.Errorf("failing: %v %v", e.Kind, e.Err)
	}
	if e := got["memory"]; e.Kind != registry.Deregistered {
		t.Errorf("memory: %v %v", e.Kind, e.Err)
	}
	if set, _ := fine.GetService(t.Context(), "orders"); len(set) != 0 {
		t.Errorf("the working registrar still holds %v", set)
	}
	h := s.Health()
	if h.Registration("hanging") != registry.RegistrationFailed || h.Registration("memory") != registry.RegistrationDeregistered {
		t.Errorf("registration states %q %q", h.Registration("hanging"), h.Registration("memory"))
	}
}

// A registration that never succeeds does not delay the shutdown, and
// the instance is not deregistered from where it never was.
func TestServerStopsWhileRegistering(t *testing.T) {
	reg := registrytest.New()
	reg.SetRegisterHook(func(ctx context.Context, _ *registry.ServiceInstance) error { <-ctx.Done(); return ctx.Err() })
	s, err := registry.NewServer(http.NotFoundHandler(), "127.0.0.1:0", reg, registry.ServiceInstance{Name: "orders"},
		registry.WithDrainDelay(0), registry.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := run(t, s)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %s", took)
	}
}

// Without a registrar the server still serves probes and shuts down
// gracefully; Run twice is an error.
func TestServerWithoutRegistry(t *testing.T) {
	c := client(t)
	s, err := registry.NewServer(http.NotFoundHandler(), "127.0.0.1:0", nil, registry.ServiceInstance{Name: "orders"},
		registry.WithDrainDelay(0), registry.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	stop, _ := run(t, s)
	if code, body := get(t, c, "http://"+s.Addr()+"/readyz"); code != 200 || body != `{"status":"ready"}`+"\n" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if err := s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run = %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestServerAddress(t *testing.T) {
	cases := []struct {
		name   string
		listen string
		addr   string
		opts   []registry.ServerOption
		want   func(port string) string
	}{
		{"from listener", "127.0.0.1:0", "", nil, func(p string) string { return "127.0.0.1:" + p }},
		{"advertised host", "127.0.0.1:0", "", []registry.ServerOption{registry.WithAdvertiseHost("10.1.2.3")}, func(p string) string { return "10.1.2.3:" + p }},
		{"host kept, port filled", "127.0.0.1:0", "192.0.2.7:0", nil, func(p string) string { return "192.0.2.7:" + p }},
		{"given as is", "127.0.0.1:0", "192.0.2.7:9999", nil, func(string) string { return "192.0.2.7:9999" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]registry.ServerOption{registry.WithDrainDelay(0), registry.WithLogger(logging.New(io.Discard, nil))}, tc.opts...)
			s, err := registry.NewServer(http.NotFoundHandler(), tc.listen, nil, registry.ServiceInstance{Name: "orders", Address: tc.addr}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Listen(); err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(s.Addr())
			if got := s.Instance().Address; got != tc.want(port) {
				t.Errorf("Address = %q, want %q", got, tc.want(port))
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := s.Run(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerValidation(t *testing.T) {
	h := http.NotFoundHandler()
	ok := registry.ServiceInstance{Name: "orders"}
	cases := map[string]func() error{
		"nil handler":    func() error { _, err := registry.NewServer(nil, ":0", nil, ok); return err },
		"listen address": func() error { _, err := registry.NewServer(h, "8080", nil, ok); return err },
		"ServiceInstance.Name": func() error {
			_, err := registry.NewServer(h, ":0", nil, registry.ServiceInstance{})
			return err
		},
		"ServiceInstance.Address": func() error {
			_, err := registry.NewServer(h, ":0", nil, registry.ServiceInstance{Name: "a", Address: "nope"})
			return err
		},
		"ServiceInstance.Weight": func() error {
			_, err := registry.NewServer(h, ":0", nil, registry.ServiceInstance{Name: "a", Weight: -1})
			return err
		},
		"WithRegisterRetry": func() error {
			_, err := registry.NewServer(h, ":0", nil, ok, registry.WithRegisterRetry(time.Second, time.Millisecond))
			return err
		},
		"WithDrainDelay": func() error {
			_, err := registry.NewServer(h, ":0", nil, ok, registry.WithDrainDelay(-1))
			return err
		},
		"WithShutdownTimeout": func() error {
			_, err := registry.NewServer(h, ":0", nil, ok, registry.WithShutdownTimeout(0))
			return err
		},
		"WithDeregisterTimeout": func() error {
			_, err := registry.NewServer(h, ":0", nil, ok, registry.WithDeregisterTimeout(0))
			return err
		},
		"WithRegisterTimeout": func() error {
			_, err := registry.NewServer(h, ":0", nil, ok, registry.WithRegisterTimeout(-time.Second))
			return err
		},
		"WithAdvertiseHost": func() error {
			_, err := registry.NewServer(h, ":0", nil, ok, registry.WithAdvertiseHost("0.0.0.0"))
			return err
		},
		"WithRegistrar":   func() error { _, err := registry.NewServer(h, ":0", nil, ok, registry.WithRegistrar(nil)); return err },
		"option 1 is nil": func() error { _, err := registry.NewServer(h, ":0", nil, ok, nil); return err },
	}
	for want, fn := range cases {
		err := fn()
		if err == nil || !strings.HasPrefix(err.Error(), "registry: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v", want, err)
		}
	}
	// A listen error is returned by Run.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = registry.Serve(t.Context(), h, l.Addr().String(), nil, ok)
	if err == nil || !strings.Contains(err.Error(), "registry: listen on") {
		t.Fatalf("Serve on a taken port = %v", err)
	}
}

// SIGTERM ends the context of SignalContext.
func TestSignalContext(t *testing.T) {
	ctx, cancel := registry.SignalContext(t.Context())
	defer cancel()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the context")
	}
}

// Two instances serve through the registry; one shuts down while a client
// keeps calling the service through the discovery Transport. Because the
// instance deregisters before it stops, and drains, no call fails.
func TestRollingShutdownWithoutErrors(t *testing.T) {
	reg := registrytest.New()
	var stops []func() error
	for _, name := range []string{"a", "b"} {
		mux := http.NewServeMux()
		mux.HandleFunc("/who", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
		s, err := registry.NewServer(mux, "127.0.0.1:0", reg, registry.ServiceInstance{Name: "orders"},
			registry.WithDrainDelay(300*time.Millisecond), registry.WithLogger(logging.New(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		stop, _ := run(t, s)
		stops = append(stops, stop)
	}
	res, err := registry.NewResolver(reg, registry.WithLogger(logging.New(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr, err := registry.NewTransport(res, base, registry.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	waitCount(t, res.Counter("orders"), 2)

	var mu sync.Mutex
	seen := map[string]int{}
	var failures []error
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := tr.Client().Get("http://orders/who")
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					seen[string(b)]++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := stops[0](); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := seen["a"]
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	close(done)
	wg.Wait()
	if len(failures) != 0 {
		t.Fatalf("%d calls failed during the shutdown, first: %v", len(failures), failures[0])
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"] != before {
		t.Fatalf("calls per instance %v (a before its stop returned: %d)", seen, before)
	}
	t.Logf("calls per instance %v, none failed", seen)
}
