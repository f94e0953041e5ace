package interop_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	kregistry "github.com/go-kratos/kratos/v2/registry"
	khttp "github.com/go-kratos/kratos/v2/transport/http"

	"github.com/gingov/gingov/registry"
)

// greeting is the Kratos service's answer.
type greeting struct {
	Message string `json:"message"`
}

// serveKratos runs a Kratos HTTP server on a free loopback port answering
// GET /hello, registers it with reg (a Kratos registrar) under name,
// version v1, and deregisters and stops it when the test ends. It returns
// the server's endpoint URL and the registered instance.
func serveKratos(t *testing.T, name string, reg kregistry.Registrar) (*url.URL, *kregistry.ServiceInstance) {
	t.Helper()
	srv := khttp.NewServer(khttp.Address("127.0.0.1:0"))
	srv.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"message":"hello from kratos"}`))
	})
	ep, err := srv.Endpoint()
	if err != nil {
		t.Fatalf("kratos server Endpoint: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(context.Background()) }()
	ins := &kregistry.ServiceInstance{ID: name + "-1", Name: name, Version: "v1", Endpoints: []string{ep.String()}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Register(ctx, ins); err != nil {
		t.Fatalf("kratos Register: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := reg.Deregister(ctx, ins); err != nil {
			t.Errorf("kratos Deregister: %v", err)
		}
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("kratos server Stop: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("kratos server Start: %v", err)
		}
	})
	return ep, ins
}

// gingovCallsKratos: disc (a gingov backend) lists the Kratos instance
// under name with its address and version, and a gingov client — a
// registry.Resolver and Transport — gets its answer.
func gingovCallsKratos(t *testing.T, disc registry.Discovery, name string, ep *url.URL, ins *kregistry.ServiceInstance) {
	t.Helper()
	res, err := registry.NewResolver(disc, registry.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Close() })

	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var got []*registry.ServiceInstance
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err = res.Instances(ctx, name)
		cancel()
		if err == nil && len(got) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gingov Resolver.Instances(%q) = %v, %v after 20 s; want the Kratos instance", name, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("Kratos Register → listed by the gingov Resolver: %v", time.Since(start).Round(time.Millisecond))
	if len(got) != 1 || got[0].Address != ep.Host || got[0].Version != ins.Version {
		t.Fatalf("gingov sees %+v; want one instance at %s, version %s", got, ep.Host, ins.Version)
	}

	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	lb, err := registry.NewTransport(res, tr)
	if err != nil {
		t.Fatal(err)
	}
	var g greeting
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := getJSON(ctx, lb.Client(), "http://"+name+"/hello", &g); err != nil || g.Message != "hello from kratos" {
		t.Fatalf("gingov client GET http://%s/hello: %+v, %v; want the Kratos service's greeting", name, g, err)
	}
}
