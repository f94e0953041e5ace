package eureka_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/eureka"
)

// heartbeatSignal is a RoundTripper that reports every heartbeat (PUT
// /apps/{APP}/{id}) a server answered 200, at the moment its answer
// arrives.
type heartbeatSignal struct {
	next http.RoundTripper
	path string // /eureka/apps/{APP}/{id}
	beat chan struct{}
}

func (h *heartbeatSignal) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && resp.StatusCode == http.StatusOK && req.URL.Path == h.path {
		select {
		case h.beat <- struct{}{}:
		default:
		}
	}
	return resp, err
}

// TestPeeredDeregistration: in a cluster of two peered Eureka servers, a
// service stopped right after a heartbeat (the moment a peer's replication
// of that heartbeat is still under way) is listed UP by neither peer 2 s
// after the stop. A plain cancel fails this: a peer that replicates the
// last heartbeat after the cancel finds the instance missing and registers
// it again, UP, for a whole lease.
func TestPeeredDeregistration(t *testing.T) {
	peers := testenv.StartEurekaPeers(t)
	name := eurekaService(t)
	app := strings.ToUpper(name)
	id := name + "-1"

	sig := &heartbeatSignal{
		next: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		path: "/eureka/apps/" + app + "/" + id,
		beat: make(chan struct{}, 1),
	}
	// A client that knows both peers, as a Spring client's defaultZone
	// lists them; requests go to the first.
	reg, ev := newEureka(t, []string{peers[0].URL, peers[1].URL},
		eureka.WithHTTPClient(&http.Client{Transport: sig}),
		eureka.WithLeaseDuration(10*time.Second)) // longer than the 2 s looked at

	mux := http.NewServeMux()
	s, err := registry.NewServer(mux, "127.0.0.1:0", reg,
		registry.ServiceInstance{ID: id, Name: name, Version: "v1"},
		registry.WithDrainDelay(100*time.Millisecond),
		registry.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	var returned time.Time // written before done is sent to
	go func() {
		err := s.Run(ctx)
		returned = time.Now()
		done <- err
	}()

	// Registered UP on both peers: the second one through replication.
	for i, p := range peers {
		eurekaWait(t, 15*time.Second, "the instance UP on peer "+string(rune('A'+i)), func() bool {
			in, ok := p.Instance(t, app, id)
			return ok && in.Status == "UP"
		})
	}
	// Stop the service just after a heartbeat went out (the second one
	// from here, so that the first one's replication has run too).
	for range 2 {
		select {
		case <-sig.beat:
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat within 10 s")
		}
	}
	stopped := time.Now()
	stop() // what SIGTERM does through registry.SignalContext
	// 2 s after the stop, whether or not the service has finished stopping.
	time.Sleep(time.Until(stopped.Add(2 * time.Second)))
	notUP(t, peers, app, id, "2 s after the stop")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	t.Logf("Run returned %v after the stop", returned.Sub(stopped).Round(time.Millisecond))
	notUP(t, peers, app, id, "once the service stopped")
	if ev.count(registry.Deregistered) != 1 {
		t.Errorf("Deregistered events = %d, want 1", ev.count(registry.Deregistered))
	}
}

// notUP fails the test if a peer lists instance id of app UP.
func notUP(t *testing.T, peers [2]*testenv.Eureka, app, id, when string) {
	t.Helper()
	for i, p := range peers {
		status := "absent"
		if in, ok := p.Instance(t, app, id); ok {
			status = in.Status
		}
		t.Logf("peer %c %s: %s", 'A'+i, when, status)
		if status == "UP" {
			t.Errorf("peer %c (%s) lists the stopped instance UP %s", 'A'+i, p.Addr, when)
		}
	}
}
