package interop_test

import (
	"context"
	"slices"
	"testing"
	"time"

	knacos "github.com/go-kratos/kratos/contrib/registry/nacos/v2"
	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/gingov/gingov/internal/testenv"
	"github.com/gingov/gingov/registry"
	"github.com/gingov/gingov/registry/nacos"
)

// gingovNacos is a registry/nacos Registry on n; kratos adds
// nacos.WithKratos (the "kind": "http" metadata).
func gingovNacos(t *testing.T, n *testenv.Nacos, kratos bool) *nacos.Registry {
	t.Helper()
	opts := []nacos.Option{
		nacos.WithLogDir(sdkDir + "/log"),
		nacos.WithCacheDir(sdkDir + "/cache"),
		nacos.WithTimeout(2 * time.Second),
		nacos.WithLogger(quiet),
	}
	if kratos {
		opts = append(opts, nacos.WithKratos())
	}
	r, err := nacos.New([]string{n.HTTPAddr}, opts...)
	if err != nil {
		t.Fatalf("nacos.New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// kratosNaming is the Nacos SDK naming client a Kratos program hands to
// contrib/registry/nacos, closed when the test ends.
func kratosNaming(t *testing.T, n *testenv.Nacos) naming_client.INamingClient {
	t.Helper()
	cli, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(
			constant.WithTimeoutMs(2000),
			constant.WithNotLoadCacheAtStart(true),
			constant.WithLogDir(sdkDir+"/kratos-log"),
			constant.WithCacheDir(sdkDir+"/kratos-cache"),
			constant.WithLogLevel("warn"),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", uint64(n.Port))},
	})
	if err != nil {
		t.Fatalf("nacos NewNamingClient: %v", err)
	}
	t.Cleanup(cli.CloseClient)
	return cli
}

// TestKratosClientCallsGingovThroughNacos: a gingov service registered
// by registry/nacos with WithKratos is found by Kratos's own Nacos
// discovery (contrib registry/nacos) under its plain name with an http://
// endpoint (from the "kind" metadata) and its version, and a Kratos HTTP
// client on discovery:///orders gets its answer, JSON decoded, and its
// error envelope as a Kratos error.
//
// What Kratos sees without WithKratos, and under the name a Kratos
// service of the same name would have, is checked as it is today.
func TestKratosClientCallsGingovThroughNacos(t *testing.T) {
	n := testenv.StartNacos(t)
	s := serveGingov(t, gingovNacos(t, n, true), registry.ServiceInstance{ID: "orders-1", Name: "orders", Version: "v1"}, fastDrain)
	naming := kratosNaming(t, n)
	disc := knacos.New(naming)

	kratosCallsGingov(t, "Nacos", disc, "orders", s)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := s.Instance().Address
	got, err := disc.GetService(ctx, "orders")
	if err != nil || len(got) != 1 {
		t.Fatalf("Kratos GetService(orders) = %v, %v; want the gingov instance", got, err)
	}
	if g := got[0]; g.Version != "v1" || !slices.Equal(g.Endpoints, []string{"http://" + addr}) || g.Metadata["kind"] != "http" {
		t.Fatalf("Kratos sees %+v; want version v1, endpoint http://%s, kind http", g, addr)
	}

	// A Kratos service named orders registers as "orders.http", and Kratos
	// clients of it dial discovery:///orders.http: such a client does not
	// find the gingov service, which registers the plain name only (the
	// SDK reports an empty service as an error).
	if dotted, err := disc.GetService(ctx, "orders.http"); len(dotted) != 0 {
		t.Fatalf("Kratos GetService(orders.http) = %v, %v; want nothing (gingov registers plain names only)", dotted, err)
	}

	// Without WithKratos there is no "kind": Kratos's discovery gives
	// the instance its default kind, grpc, and its HTTP client skips it...
	plain := gingovNacos(t, n, false)
	ins := &registry.ServiceInstance{ID: "plain-1", Name: "plain", Version: "v1", Address: addr}
	if err := plain.Register(ctx, ins); err != nil {
		t.Fatalf("Register: %v", err)
	}
	waitKratos(t, disc, "plain", "grpc://"+addr)
	// ...unless the Kratos program builds its discovery with
	// WithDefaultKind("http"): then its client takes the instance.
	httpDisc := knacos.New(naming, knacos.WithDefaultKind("http"))
	waitKratos(t, httpDisc, "plain", "http://"+addr)
	out, _ := firstCall(t, kratosClient(t, httpDisc, "plain"), time.Now(), 10*time.Second)
	if out.Instance != "orders-1" {
		t.Fatalf("answer %+v; want the gingov service's", out)
	}
}

// waitKratos waits until Kratos's discovery lists exactly one instance of
// name, with the endpoint want.
func waitKratos(t *testing.T, disc *knacos.Registry, name, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := disc.GetService(ctx, name)
		cancel()
		if err == nil && len(got) == 1 && slices.Equal(got[0].Endpoints, []string{want}) {
			return
		}
		if time.Now().After(deadline) {
			var eps [][]string
			for _, g := range got {
				eps = append(eps, g.Endpoints)
			}
			t.Fatalf("Kratos GetService(%s): endpoints %v, %v; want [%s]", name, eps, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGingovClientCallsKratosThroughNacos: a Kratos HTTP service
// registered by Kratos's own Nacos registrar, which names it
// "<name>.http", is found by registry/nacos's discovery under that name
// with its address and version, and a gingov client gets its answer at
// http://hello.http/.
func TestGingovClientCallsKratosThroughNacos(t *testing.T) {
	n := testenv.StartNacos(t)
	ep, ins := serveKratos(t, "hello", knacos.New(kratosNaming(t, n)))
	gingovCallsKratos(t, gingovNacos(t, n, false), "hello.http", ep, ins)
}

// TestKratosClientFollowsGingovDeregistrationThroughNacos: see
// kratosFollowsDeregistration.
func TestKratosClientFollowsGingovDeregistrationThroughNacos(t *testing.T) {
	n := testenv.StartNacos(t)
	kratosFollowsDeregistration(t, knacos.New(kratosNaming(t, n)), gingovNacos(t, n, true), "orders")
}
